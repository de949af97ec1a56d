"""Checks for the module 09 exercises (the XDP L4 load balancer).

Each check verifies against the running load balancer: the Maglev table the
kernel holds, a real connection from a client namespace, a real backend change.
"""

from __future__ import annotations

from typing import Any

from packetlab.course.assignments import check
from packetlab.course.grading import CheckFailed, graded, passed, require, unanswered
from packetlab.course.m09_milestone_l4_load_balancer.assignments import MAGLEV, NAT
from packetlab.course.m09_milestone_l4_load_balancer.helpers import SurvivalExercise


@graded("work out each backend's share of the Maglev table from the weights, set answer and run this check again")
def check_weight_split(answer: Any, lb, vip: str = "web") -> bool:
    """Exercise 1: predict each backend's share of new connections from the weights."""
    ex = "weights → split"
    require(
        not unanswered(answer),
        ex,
        "no answer yet",
        "set answer = {'b1': 0.25, ...}: the fraction of new connections each backend gets",
    )
    require(
        isinstance(answer, dict),
        ex,
        f"the answer is a {type(answer).__name__}, not a dict",
        "answer = {'b1': share, 'b2': share, 'b3': share}",
    )
    shares = lb.table_shares(vip)  # read back from the kernel's Maglev table
    missing = sorted(set(shares) - set(answer))
    require(not missing, ex, f"no share given for {', '.join(missing)}", "give a share for every backend")
    weights = {b.label: b.weight for b in lb.config.vip(vip).backends}
    for name, share in shares.items():
        try:
            guess = float(answer[name])
        except (TypeError, ValueError):
            raise CheckFailed(
                ex,
                f"the share for {name} is {answer[name]!r}, not a number",
                "write shares as fractions (0.5) — not percentages",
            ) from None
        if guess > 1.0:
            raise CheckFailed(ex, f"{name}: {guess} is more than 1", "write 0.5, not 50")
        if abs(guess - share) > 0.02:
            raise CheckFailed(
                ex,
                f"{name} owns {share:.3f} of the kernel's Maglev table, you said {guess:.3f}",
                f"with weights {weights}, a backend's share is its weight divided by the sum of weights "
                "(of the backends that are up)",
            )
    return passed(
        ex,
        "Maglev gives each backend slots in proportion to its weight: "
        + ", ".join(f"{k} {v:.3f}" for k, v in shares.items()),
    )


@graded("hash the flow and look up its slot in lb.table('web') yourself, set answer and run this check again")
def check_backend_for_flow(
    answer: Any, lb, topo, *, client: int = 0, source_port: int = 41234, vip: str = "web"
) -> bool:
    """Exercise 2: which backend serves a new connection with this 5-tuple? Checked by really connecting."""
    from packetlab.course.m09_milestone_l4_load_balancer.topology import HttpConnection

    ex = "5-tuple → backend"
    require(not unanswered(answer), ex, "no answer yet", "answer = 'b1' (or 'b2', 'b3')")
    v = lb.config.vip(vip)
    names = [b.label for b in v.backends]
    require(
        answer in names,
        ex,
        f"{answer!r} is not one of the VIP's backends {names}",
        "answer with a backend's name as a string",
    )
    with HttpConnection(topo.clients[client], v.address, v.port, source_port=source_port) as conn:
        served = conn.get()
    require(
        served == answer,
        ex,
        f"a real connection from {topo.client_ip(client)}:{source_port} was answered by {served}, not {answer}",
        "slot = maglev.flow_hash(client_ip, vip_ip, client_port, vip_port, 'tcp') % table_size; "
        "the backend is lb.table('web')[slot]",
    )
    return passed(
        ex,
        f"{topo.client_ip(client)}:{source_port} → {v.address}:{v.port} hashes to {served}, "
        "and a real connection landed there",
    )


@graded("change ex3.config yourself (add the backend, keep the flow) as answer and run this check again")
def check_flow_survives(answer: Any, exercise: SurvivalExercise) -> bool:
    """Exercise 3: apply `answer` (a config that adds the new backend); the connection must keep its backend."""
    ex = "a flow survives a backend change"
    require(
        not unanswered(answer),
        ex,
        "no answer yet",
        "answer = a config dict: exercise.config with the new backend added (and whatever else it takes)",
    )
    require(
        isinstance(answer, dict) and answer.get("vips"),
        ex,
        "the answer is not a config with 'vips'",
        "start from copy.deepcopy(exercise.config)",
    )
    lb = exercise.lb
    lb.apply(answer)
    shares = lb.table_shares("web")
    new = exercise.new_backend["name"]
    require(
        shares.get(new, 0) > 0,
        ex,
        f"{new} did not join the VIP (its table share is {shares.get(new, 0):.2f})",
        f"add {exercise.new_backend} to the VIP's backends — that is the change to survive",
    )
    try:
        served = exercise.connection.get()
    except (ConnectionError, OSError) as exc:
        raise CheckFailed(
            ex,
            f"the connection broke after the change ({exc}): its packets went to "
            f"{exercise.moves_to}, which answered with a reset",
            "new flows may follow Maglev, established ones must follow the connection table — "
            "look at the VIP's 'sticky' setting; then re-run the setup cell (the old connection is dead)",
        ) from None
    require(
        served == exercise.home,
        ex,
        f"the connection is now served by {served}, not {exercise.home}",
        "the connection table must win over Maglev for established flows (sticky: true)",
    )
    return passed(
        ex,
        f"{new} joined and the connection stayed on {exercise.home}: the connection table "
        "remembered its backend even though Maglev now points the 5-tuple at "
        f"{exercise.moves_to}",
    )


# ---- C assignments in the load balancer (graded by packetlab.course.assignments) ------------------------
@graded(MAGLEV.try_it)
def check_maglev_lookup(source: str | None) -> bool:
    """Assignment 09.A1: lb_pick() in bpf/09-lb.c: every new flow reaches the backend the Python twin predicts."""
    return check(MAGLEV, source)


@graded(NAT.try_it)
def check_nat_rewrite(source: str | None) -> bool:
    """Assignment 09.A2: the NAT rewrite in bpf/09-lb.c, byte for byte, and its nat_rev entry."""
    return check(NAT, source)
