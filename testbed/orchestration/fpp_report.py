"""The report's federated power plant section: each contract, its coalition (who, where on the feeder), required
against delivered power over the window, revenue and each member's share under every rule (from ``kpis.json``)."""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np

from testbed.orchestration.charts import Line, time_chart

_RULES = ("shapley", "nucleolus", "least-core", "proportional")


def _num(x: Any, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}" if isinstance(x, float) else html.escape(str(x))


def fpp_section(fpp: Mapping[str, Any], start: datetime) -> str:
    """HTML of the ``fpp`` KPIs: totals, then one block per contract."""
    t = fpp.get("totals", {})
    out = [
        "<p>" + html.escape(
            f"{t.get('contracts', 0)} contracts, {t.get('filled', 0)} filled, {t.get('unfilled', 0)} unfilled "
            f"(shortfall {t.get('shortfall_kw', 0.0):.2f} kW); revenue {t.get('revenue', 0.0):.2f}, penalties "
            f"{t.get('penalty', 0.0):.2f}; members worse off: {t.get('members_worse_off', 0)}; Gini of gains "
            f"{t.get('gini_of_gains', float('nan')):.3f}; firm capacity pooled {t.get('pooled_firm_kw', 0.0):.2f} kW "
            f"against {t.get('sum_individual_firm_kw', 0.0):.2f} kW for the members alone "
            f"(+{t.get('pooling_gain_kw', 0.0):.2f} kW)") + "</p>"
    ]
    for cid, c in fpp.get("contracts", {}).items():
        out.append(f"<h3>{html.escape(cid)}</h3>")
        facts = [("buyer", c.get("buyer")), ("service", c.get("service")), ("subject", c.get("subject")),
                 ("window", " to ".join(c.get("window", []))), ("direction", c.get("direction")),
                 ("status", c.get("status")), ("required [kW]", c.get("required_kw")), ("firm [kW]", c.get("firm_kw")),
                 ("shortfall [kW]", c.get("shortfall_kw")), ("offers / declined", f"{c.get('offers')} / "
                                                                                  f"{c.get('declined')}"),
                 ("fulfilment", c.get("fulfilment")), (f"revenue [{c.get('currency')}]", c.get("revenue")),
                 ("penalty", c.get("penalty")), ("origin", c.get("origin"))]
        out.append("<table>" + "".join(f"<tr><th>{html.escape(k)}</th><td>{_num(v)}</td></tr>" for k, v in facts
                                       if v is not None) + "</table>")
        series = c.get("series")
        if series and series.get("required_kw"):
            w0, w1 = (datetime.fromisoformat(x) for x in c["window"])
            n = len(series["required_kw"])
            step_h = (w1 - w0).total_seconds() / 3600.0 / n
            hours = (w0 - start).total_seconds() / 3600.0 + step_h * np.arange(n)
            out.append(time_chart(f"{cid}: required and delivered (counted at the location)", "power [kW]", hours,
                                  [Line("required", np.asarray(series["required_kw"]), "#333333"),
                                   Line("delivered", np.asarray(series["delivered_kw"]), "#1b7a1b", "--")],
                                  steps=True))
        members = c.get("members") or {}
        if members:
            rules = [r for r in _RULES if any(r in m.get("shares", {}) for m in members.values())]
            head = "".join(f"<th>{r}</th>" for r in rules)
            rows = [f"<table><tr><th>member</th><th>bus</th><th>cost</th>{head}<th>penalty</th><th>payout</th>"
                    f"<th>gain</th><th>delivered / required [kWh]</th></tr>"]
            for wid, m in sorted(members.items()):
                shares = "".join(f'<td class="num">{_num(m["shares"].get(r))}</td>' for r in rules)
                flag = " (failed)" if m.get("failed") else ""
                rows.append(f"<tr><td>{html.escape(wid)}{flag}</td><td>{html.escape(str(m.get('bus')))}</td>"
                            f'<td class="num">{_num(m["cost"])}</td>{shares}<td class="num">{_num(m["penalty"])}</td>'
                            f'<td class="num">{_num(m["payout"])}</td><td class="num">{_num(m["gain"])}</td>'
                            f'<td class="num">{_num(m["delivered_kwh"])} / {_num(m["required_kwh"])}</td></tr>')
            rows.append("</table>")
            out.append("".join(rows))
    if fpp.get("refused"):
        out.append("<p>Refused or missing messages:</p><ul>" + "".join(
            f"<li>{html.escape(r)}</li>" for r in fpp["refused"]) + "</ul>")
    return "\n".join(out)
