"""Great Expectations pieces of the day's Data Docs site: the Checkpoint action that renders a
table's page, the page view that escapes what came from the data, and the templates and site
builder that take the pages' scripts, styles and images from the reports' shared folders
(``gx_assets``) instead of public CDNs and a copy of GX's static folder in every site.

Imports GX at import time: only ``offline_eval.io.gx``'s runner imports this module, lazily, so
the DAG files and the light CLI commands never pay for it.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, ClassVar, Literal

from great_expectations.checkpoint import UpdateDataDocsAction
from great_expectations.render.components import RenderedComponentContent
from great_expectations.render.renderer.site_builder import SiteBuilder
from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, pass_context

from offline_eval.io import gx_assets

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


# Overrides of GX's templates of the same names (page heads, script imports, logo, favicon): GX
# puts a site's custom views *after* its own in the loader, so they can add templates but not
# replace one; the views below put this folder first instead.
TEMPLATES = Path(__file__).with_name("gx_templates")


def _site_root(ctx: Any) -> str:
    """The way up from the page being rendered to its site's root folder, worked out as GX's own
    templates do (top_navbar.j2): a validation page sits at
    validations/<suite name parts>/<run name>/<run time>/<batch>.html, a suite page at
    expectations/<suite name parts>.html, the index at the root."""
    renderer = str(ctx.get("renderer_type") or "")
    dots = str(ctx.get("expectation_suite_name") or "").count(".")
    if "ValidationResults" in renderer or "ProfilingResults" in renderer:
        return "../" * (dots + 4)
    if "ExpectationSuite" in renderer:
        return "../" * (dots + 1)
    return ""


def _assets(ctx: Any) -> dict[str, str | None]:
    return ctx.get("offline_eval_assets") or {}


@pass_context
def asset_url(ctx: Any, url: str) -> str:
    """The local copy of the file a CDN URL names (a URL relative to the page), or the URL
    itself when the site has no vendor folder. Every URL must be pinned in the manifest."""
    local = gx_assets.manifest().local_path(url)
    vendor = _assets(ctx).get("vendor")
    return html.escape(_site_root(ctx) + vendor + local if vendor else url)


@pass_context
def cdn_integrity(ctx: Any, integrity: str) -> str:
    """GX's integrity attributes, kept for the CDNs only: a page opened from disk cannot check
    a local file's integrity (a file:// request is not CORS-enabled), and the browser would
    refuse it. The local copies were checked against the registry's sha512 when fetched."""
    if _assets(ctx).get("vendor"):
        return ""
    return f' integrity="{html.escape(integrity)}" crossorigin="anonymous"'


@pass_context
def static_url(ctx: Any, path: str) -> str:
    """A file of GX's static folder: the reports' shared copy, or the site's own static/."""
    return html.escape(_site_root(ctx) + (_assets(ctx).get("static") or "static/") + path)


def _use_local_templates(env: Environment) -> None:
    env.loader = ChoiceLoader([FileSystemLoader(TEMPLATES), *([env.loader] if env.loader else [])])
    env.globals.update(offline_eval_asset=asset_url, offline_eval_sri=cdn_integrity, offline_eval_static=static_url)


class _SharedAssetsView:
    """Gives its pages the site's shared folders (``assets``: ``SiteAssets.as_config()``, from
    the site config's view entry) as the ``offline_eval_assets`` variable of the templates."""

    assets: dict[str, str | None]

    def render(self, document: Any, template: Any = None, **kwargs: Any) -> Any:
        return super().render(document, template, offline_eval_assets=self.assets, **kwargs)  # type: ignore[misc]


class LocalAssetsIndexPageView(_SharedAssetsView, DefaultJinjaIndexPageView):
    """GX's index page view with the templates of ``gx_templates`` (one per site build)."""

    def __init__(self, custom_styles_directory: str | None = None, custom_views_directory: str | None = None,
                 assets: dict[str, str | None] | None = None) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        self.assets = assets or {}
        _use_local_templates(self.env)


class EscapedPageView(_SharedAssetsView, DefaultJinjaPageView):
    """GX 1.24's page view escapes the parameters of its sentence templates but writes plain
    table cells as they are, so an unexpected value such as ``<img src=x onerror=...>`` taken
    from a category column would run as markup in the reader's browser. Every plain value that
    reaches a page is text: escape it here, where GX turns content into HTML; GX's own markup
    comes as typed content blocks and is untouched.

    GX makes a new view, with a new Jinja environment, for every page it renders, and compiling
    its templates again took about 0.9 s of each table's 1.1 s page build: the views of a
    process share the first one's environment (their filters are the same methods of the same
    class, their templates the same files; what differs per site, ``assets``, is passed to each
    render)."""

    _shared_env: ClassVar[Environment | None] = None

    def __init__(self, custom_styles_directory: str | None = None, custom_views_directory: str | None = None,
                 assets: dict[str, str | None] | None = None) -> None:
        super().__init__(custom_styles_directory, custom_views_directory)
        self.assets = assets or {}
        if custom_styles_directory or custom_views_directory:
            _use_local_templates(self.env)
            return
        if EscapedPageView._shared_env is None:
            _use_local_templates(self.env)
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


class SharedStaticSiteBuilder(SiteBuilder):
    """GX's site builder without the copy of GX's static folder (about 4 MB: images, fonts,
    styles) it makes into the site on every build (every table's page, each pass): the pages
    take the few files they use from one shared copy (``gx_assets.install_static``). Otherwise
    GX 1.24's ``SiteBuilder.build``: the sections' pages, then the index."""

    def build(self, resource_identifiers: Any = None, build_index: bool = True) -> Any:
        for section_builder in self.site_section_builders.values():
            section_builder.build(resource_identifiers=resource_identifiers)
        _, index_links = self.site_index_builder.build(build_index=build_index)
        return self.get_resource_url(only_if_exists=False), index_links


def site_config(directory: Path, assets: gx_assets.SiteAssets | None = None) -> Any:
    """A filesystem Data Docs site at ``directory`` with the escaping view on its pages; no
    profiling section (the pipeline profiles nothing with GX) and no GX tutorial buttons. Its
    pages load their scripts, styles and images from the shared folders of ``assets`` (None:
    from the CDNs, and GX copies its static folder into the site, as GX does)."""
    assets = assets or gx_assets.SiteAssets(vendor=None, static=None)
    shared = assets.as_config()
    view = {"module_name": __name__, "class_name": EscapedPageView.__name__, "assets": shared}
    builder = {"module_name": __name__, "class_name": SharedStaticSiteBuilder.__name__} if assets.static else {
        "class_name": "SiteBuilder"}
    return {
        **builder,
        "show_how_to_buttons": False,
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(directory)},
        "site_index_builder": {
            "class_name": "DefaultSiteIndexBuilder",
            "view": {"module_name": __name__, "class_name": LocalAssetsIndexPageView.__name__, "assets": shared},
        },
        "site_section_builders": {
            "expectations": {"view": view},
            "validations": {"view": view},
            "profiling": "False",
        },
    }
