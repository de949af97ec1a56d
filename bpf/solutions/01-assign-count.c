    struct proto_stats *s = stats.lookup(&key);
    if (s) {                        /* the verifier insists: a lookup may return NULL */
        s->packets += 1;            /* per-CPU value: no other CPU writes it, no atomics needed */
        s->bytes += data_end - data;
    }
