    struct flow_value *val = flows.lookup(&key);
    if (val) {
        __sync_fetch_and_add(&val->packets, 1);
        __sync_fetch_and_add(&val->bytes, len);
        val->last_ns = now;
        val->tcp_flags |= flags;
        if ((flags & 0x05) && !val->ended) {     /* FIN or RST: the flow ends */
            val->ended = 1;
            emit(ctx, EV_FLOW_END, &key, val, now, len);
        }
    } else {
        struct flow_value init = { .packets = 1, .bytes = len, .first_ns = now, .last_ns = now,
                                   .tcp_flags = flags, .ended = (flags & 0x05) ? 1 : 0 };
        if (flows.update(&key, &init) == 0) {    /* BPF_ANY: a racing CPU's first packet may be overwritten */
            count(STAT_FLOWS, 1);
            emit(ctx, EV_FLOW_START, &key, &init, now, len);
            if (init.ended)
                emit(ctx, EV_FLOW_END, &key, &init, now, len);
        } else {
            count(STAT_TABLE_FULL, 1);
        }
    }
