"""packetlab.show.prometheus: the one Prometheus text writer and its reader (pure, no kernel)."""

from __future__ import annotations

import math

import pytest

from packetlab.show.prometheus import (
    MetricFamily,
    escape_help,
    escape_label_value,
    exposition,
    format_labels,
    format_value,
    parse_samples,
)

NASTY = 'say "hi"\\path\nnext line'  # every character the format escapes in a label value


def test_label_values_escape_backslash_quote_and_newline():
    assert format_labels({"a": 'x"y', "b": "p\\q\nr"}) == '{a="x\\"y",b="p\\\\q\\nr"}'
    assert escape_label_value(NASTY) == 'say \\"hi\\"\\\\path\\nnext line'
    assert escape_label_value("\\n") == "\\\\n"  # a literal backslash-n is not a newline
    assert escape_label_value(80) == "80" and format_labels({}) == ""


def test_help_escapes_backslash_and_newline_but_not_quotes():
    assert escape_help('a "b"\\c\nd') == 'a "b"\\\\c\\nd'


def test_values_read_back_exactly():
    assert [format_value(v) for v in (0, 12345678901234, True, 0.1, 1.0, 1e-9)] == [
        "0",
        "12345678901234",
        "1",
        "0.1",
        "1.0",
        "1e-09",
    ]
    assert [format_value(v) for v in (math.inf, -math.inf, math.nan)] == ["+Inf", "-Inf", "NaN"]


def test_a_family_writes_help_and_type_once_then_its_samples():
    fam = MetricFamily("demo_packets_total", "counter", "Packets.\nPer rule.")
    fam.add(3, {"netns": "lab-h1"}, rule=NASTY)
    fam.add(4, rule="b")
    empty = MetricFamily("demo_rules", "gauge", "Rules.")
    text = exposition([fam, empty])
    assert text.splitlines() == [
        "# HELP demo_packets_total Packets.\\nPer rule.",
        "# TYPE demo_packets_total counter",
        'demo_packets_total{netns="lab-h1",rule="say \\"hi\\"\\\\path\\nnext line"} 3',
        'demo_packets_total{rule="b"} 4',
        "# HELP demo_rules Rules.",
        "# TYPE demo_rules gauge",
    ]
    assert text.endswith("\n")


def test_parse_samples_reads_back_what_exposition_wrote():
    fam = MetricFamily("m", "gauge", "h")
    fam.add(1.5, a=NASTY, b="")
    fam.add(2)
    samples = parse_samples(exposition([fam]))
    assert samples == {("m", frozenset({("a", NASTY), ("b", "")})): 1.5, ("m", frozenset()): 2.0}
    with pytest.raises(ValueError, match="bad labels"):
        parse_samples("m{a=1} 2")
    with pytest.raises(ValueError, match="not a sample line"):
        parse_samples("m 1 2 3")


def test_prometheus_client_parses_our_output():
    parser = pytest.importorskip("prometheus_client.parser")  # only where it is installed anyway (jupyter_server)
    fam = MetricFamily("demo_packets_total", "counter", 'Help with "quotes" and \\ backslash.')
    fam.add(7, rule=NASTY, action="drop")
    gauge = MetricFamily("demo_share", "gauge", "A share.")
    gauge.add(0.25, backend="b1")
    parsed = {f.name: f for f in parser.text_string_to_metric_families(exposition([fam, gauge]))}
    counter = parsed["demo_packets"]  # the client drops the _total suffix from a counter's family name
    assert counter.type == "counter" and counter.documentation == 'Help with "quotes" and \\ backslash.'
    (sample,) = counter.samples
    assert sample.labels == {"rule": NASTY, "action": "drop"} and sample.value == 7
    assert parsed["demo_share"].samples[0].value == 0.25


def test_names_kinds_and_duplicates_are_refused():
    with pytest.raises(ValueError, match="metric name"):
        MetricFamily("1bad", "gauge", "h")
    with pytest.raises(ValueError, match="kind"):
        MetricFamily("ok", "histogram", "h")
    with pytest.raises(ValueError, match="label name"):
        format_labels({"bad-name": 1})
    with pytest.raises(ValueError, match="given twice"):
        exposition([MetricFamily("m", "gauge", "h"), MetricFamily("m", "gauge", "h")])
