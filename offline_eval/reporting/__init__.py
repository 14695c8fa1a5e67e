"""Human-facing renderings (HTML, Markdown, text) of results computed elsewhere. No IO."""
from __future__ import annotations

import functools
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
