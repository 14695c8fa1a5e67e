"""Human-facing renderings (HTML, Markdown, text) of results computed elsewhere. No IO."""
from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2


@functools.cache
def _environment() -> jinja2.Environment:
    # Imported here so that the Markdown and text renderings do not pay for Jinja2; one
    # Environment per process so each template is compiled once.
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("offline_eval.reporting", "templates"),
                              autoescape=True, undefined=jinja2.StrictUndefined)


def render_template(name: str, **context: Any) -> str:
    """Render ``templates/<name>`` with autoescape on: every string from the data is escaped
    unless it is wrapped in ``markupsafe.Markup`` by code that built it safely."""
    return _environment().get_template(name).render(**context)


def fmt(value: float | None, kind: str, digits: int = 4) -> str:
    """A number as the report pages show it: ``pct`` (2 decimals), ``int`` (thousands
    separated), else ``digits`` decimals below 100 and none above; a dash when missing."""
    if value is None or not math.isfinite(value):
        return "–"
    if kind == "pct":
        return f"{value:.2%}"
    if kind == "int":
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}" if abs(value) < 100 else f"{value:,.0f}"
