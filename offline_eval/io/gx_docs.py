"""Great Expectations pieces of the day's Data Docs site: the Checkpoint action that renders a
table's page, and the page view that escapes what came from the data.

Imports GX at import time: only ``offline_eval.io.gx``'s runner imports this module, lazily, so
the DAG files and the light CLI commands never pay for it.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, ClassVar, Literal

from great_expectations.checkpoint import UpdateDataDocsAction
from great_expectations.render.components import RenderedComponentContent
from great_expectations.render.view import DefaultJinjaPageView
from jinja2 import Environment, pass_context

# GX registers every action class by its ``type``: this name must stay unique in the process.
PAGE_ACTION_TYPE = "offline_eval_data_docs_pages"


class PageOnlyDataDocsAction(UpdateDataDocsAction):
    """``UpdateDataDocsAction`` that renders the validated tables' pages but not the site's
    index: a day has one Checkpoint run per table (each table brings its own DataFrame), and
    the index, which lists every page of the site, is built once when the day is done."""

    type: Literal["offline_eval_data_docs_pages"] = PAGE_ACTION_TYPE  # type: ignore[assignment]

    def _build_data_docs(self, site_names: list[str] | None = None,
                         resource_identifiers: list | None = None) -> dict:
        return self._resolve_context().context.build_data_docs(
            site_names=site_names, resource_identifiers=resource_identifiers, dry_run=False, build_index=False)


def _is_component(block: Any) -> bool:
    return isinstance(block, RenderedComponentContent) or (isinstance(block, dict) and "content_block_type" in block)


class EscapedPageView(DefaultJinjaPageView):
    """GX 1.24's page view escapes the parameters of its sentence templates but writes plain
    table cells as they are, so an unexpected value such as ``<img src=x onerror=...>`` taken
    from a category column would run as markup in the reader's browser. Every plain value that
    reaches a page is text: escape it here, where GX turns content into HTML; GX's own markup
    comes as typed content blocks and is untouched.

    GX makes a new view, with a new Jinja environment, for every page it renders, and compiling
    its templates again took about 0.9 s of each table's 1.1 s page build: the views of a
    process share the first one's environment (their filters are the same methods of the same
    class, and these views have no custom templates)."""

    _shared_env: ClassVar[Environment | None] = None

    def __init__(self, custom_styles_directory: str | None = None, custom_views_directory: str | None = None) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        if custom_styles_directory or custom_views_directory:
            return
        if EscapedPageView._shared_env is None:
            EscapedPageView._shared_env = self.env
        else:
            self.env = EscapedPageView._shared_env

    @pass_context
    def render_content_block(self, jinja_context: Any, content_block: Any, index: Any = None,
                             content_block_id: Any = None, render_to_markdown: bool = False) -> Any:
        if content_block is None:
            return ""
        if isinstance(content_block, list):
            content_block = [b if _is_component(b) else html.escape(str(b)) for b in content_block]
        elif not _is_component(content_block):
            return html.escape(str(content_block))
        return super().render_content_block(jinja_context, content_block, index, content_block_id, render_to_markdown)


def site_config(directory: Path) -> Any:
    """A filesystem Data Docs site at ``directory`` with the escaping view on its pages; no
    profiling section (the pipeline profiles nothing with GX) and no GX tutorial buttons."""
    view = {"module_name": __name__, "class_name": EscapedPageView.__name__}
    return {
        "class_name": "SiteBuilder",
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(directory)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "site_section_builders": {
            "expectations": {"view": view},
            "validations": {"view": view},
            "profiling": "False",
        },
    }
