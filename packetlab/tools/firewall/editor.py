"""A rule editor for the notebook (ipywidgets) that writes the rule-file format.

One row of widgets per rule; "Validate" runs the same validator as files
(errors name the row's line in the generated YAML), "Save" writes the YAML,
"Apply" swaps it into a running firewall. Everything the buttons do is also
a method (`add_rule`, `to_yaml`, `ruleset`, `save`, `apply`), so a notebook
cell — or a test — can drive the editor without clicking.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from packetlab.tools.firewall.rulefile import parse_rules
from packetlab.tools.firewall.rules import ACTIONS, DEFAULTS, FRAGMENT_POLICIES, RuleError, RuleSet

TEXT_FIELDS = ("src", "dst", "proto", "dport", "sport", "tcp_flags", "rate", "burst")


class RuleEditor:
    """Edit a rule set in widgets; the output is an ordinary rule file."""

    def __init__(self, ruleset: RuleSet | None = None, *, firewall: Any = None, path: str | Path | None = None) -> None:
        import ipywidgets as w

        self._w = w
        self.firewall = firewall
        self.path = Path(path) if path else None
        self.default = w.Dropdown(options=DEFAULTS, value=ruleset.default if ruleset else "drop", description="default")
        self.fragments = w.Dropdown(
            options=FRAGMENT_POLICIES, value=ruleset.fragments if ruleset else "l3", description="fragments"
        )
        self.rows: list[dict[str, Any]] = []
        self.rows_box = w.VBox()
        self.output = w.Output()
        self.message = ""
        add = w.Button(description="Add rule", icon="plus")
        add.on_click(lambda _: self.add_rule())
        check = w.Button(description="Validate", icon="check")
        check.on_click(lambda _: self._report(self.validate))
        save = w.Button(description="Save", icon="save")
        save.on_click(lambda _: self._report(self.save))
        apply = w.Button(description="Apply", icon="play", button_style="primary")
        apply.on_click(lambda _: self._report(self.apply))
        header = w.HBox([w.Label(x, layout=w.Layout(width=wd)) for x, wd in _COLUMNS])
        self.widget = w.VBox(
            [
                w.HBox([self.default, self.fragments]),
                header,
                self.rows_box,
                w.HBox([add, check, save, apply]),
                self.output,
            ]
        )
        for rule in ruleset.rules if ruleset else []:
            self.add_rule(**rule.to_dict())

    # ---- rows ---------------------------------------------------------------------------------
    def add_rule(self, name: str = "", action: str = "allow", **fields: Any) -> dict[str, Any]:
        """Append a row; field values as in a rule file (lists allowed)."""
        w = self._w
        unknown = set(fields) - set(TEXT_FIELDS)
        if unknown:
            raise TypeError(
                f"unknown rule field(s): {', '.join(sorted(unknown))} (known: name, action, {', '.join(TEXT_FIELDS)})"
            )
        row: dict[str, Any] = {
            "name": w.Text(value=str(name or f"rule-{len(self.rows) + 1}"), layout=w.Layout(width=_WIDTH["name"])),
            "action": w.Dropdown(options=ACTIONS, value=action, layout=w.Layout(width=_WIDTH["action"])),
        }
        for key in TEXT_FIELDS:
            value = fields.get(key, "")
            if isinstance(value, list | tuple):
                value = ", ".join(str(v) for v in value)
            row[key] = w.Text(
                value="" if value is None else str(value),
                placeholder="any" if key in ("src", "dst", "proto") else "",
                layout=w.Layout(width=_WIDTH[key]),
            )
        remove = w.Button(icon="trash", layout=w.Layout(width="40px"), tooltip="remove this rule")
        row["_box"] = w.HBox([row["name"], row["action"], *(row[k] for k in TEXT_FIELDS), remove])
        remove.on_click(lambda _: self.remove_rule(row))
        self.rows.append(row)
        self.rows_box.children = tuple(r["_box"] for r in self.rows)
        return row

    def remove_rule(self, row: dict[str, Any] | int) -> None:
        if isinstance(row, int):
            row = self.rows[row]
        self.rows.remove(row)
        self.rows_box.children = tuple(r["_box"] for r in self.rows)

    # ---- output -------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        rules = []
        for row in self.rows:
            rule: dict[str, Any] = {"name": row["name"].value.strip(), "action": row["action"].value}
            for key in TEXT_FIELDS:
                text = row[key].value.strip()
                if not text:
                    continue
                parts = [p.strip() for p in text.split(",") if p.strip()]
                if key == "tcp_flags":
                    rule[key] = text
                elif key in ("burst",):
                    rule[key] = int(text) if text.isdigit() else text
                elif key == "rate":
                    rule[key] = text
                else:
                    values = [int(p) if key in ("dport", "sport") and p.isdigit() else p for p in parts]
                    rule[key] = values[0] if len(values) == 1 else values
            rules.append(rule)
        return {"default": self.default.value, "fragments": self.fragments.value, "rules": rules}

    def to_yaml(self) -> str:
        """The rule file text the widgets describe."""
        return "# written by the packetlab firewall rule editor\n" + yaml.safe_dump(
            self.to_dict(), sort_keys=False, default_flow_style=None
        )

    def ruleset(self, source: str = "<rule editor>") -> RuleSet:
        """Validate (raises RuleError, with lines of `to_yaml()` output)."""
        return parse_rules(self.to_yaml(), source=str(self.path) if self.path else source)

    def validate(self) -> str:
        rs = self.ruleset()
        from packetlab.tools.firewall.compiler import compile_rules

        compiled = compile_rules(rs)
        msg = f"valid: {len(rs.rules)} rules -> {compiled.n_entries} entries"
        return "\n".join([msg, *(f"warning: {w}" for w in rs.warnings)])

    def save(self, path: str | Path | None = None) -> str:
        target = Path(path) if path else self.path
        if target is None:
            raise ValueError("no path: RuleEditor(path=...) or save(path)")
        self.ruleset()  # never write an invalid file
        target.write_text(self.to_yaml())
        return f"saved {target}"

    def apply(self, firewall: Any = None) -> str:
        fw = firewall or self.firewall
        if fw is None:
            raise ValueError("no firewall: RuleEditor(firewall=fw) or apply(fw)")
        return str(fw.apply(self.ruleset()))

    def _report(self, action) -> None:
        self.output.clear_output()
        with self.output:
            try:
                self.message = action()
            except RuleError as exc:
                self.message = str(exc)
            except (ValueError, TypeError) as exc:
                self.message = f"error: {exc}"
            print(self.message)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


_WIDTH = {
    "name": "110px",
    "action": "100px",
    "src": "140px",
    "dst": "140px",
    "proto": "80px",
    "dport": "100px",
    "sport": "80px",
    "tcp_flags": "90px",
    "rate": "70px",
    "burst": "55px",
}
_COLUMNS = [(k, _WIDTH[k]) for k in ("name", "action", *TEXT_FIELDS)]
