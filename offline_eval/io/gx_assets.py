"""The files GX's Data Docs pages load from public CDNs (jQuery, Bootstrap, bootstrap-table, Font
Awesome, Vega, ...), served from the reports instead, so the pages work on a closed network.

Each file is the one its CDN URL names, taken from the npm package of that version: the
tarballs are fetched once from the npm registry (``OFFLINE_EVAL_NPM_REGISTRY``, default
registry.npmjs.org; a mirror works the same), checked against the sha512 integrity pinned in
``gx_assets.json`` and kept in a cache (``OFFLINE_EVAL_GX_ASSETS_CACHE``, default the
environment's ``share/offline-eval/gx-assets``, which ``make install`` fills). The files the pages
load are copied once into ``reports/_assets/gx/vendor-<manifest hash>/``, next to one copy of
GX's own static folder (``static-<GX version>/``), which GX would otherwise copy into every day's
site. Both are written into a temporary folder renamed into place: days validated side by side
see a whole folder or none, and the first one to finish wins.

Docs are a convenience of the gate, not part of it: when the tarballs cannot be had (no network
and an empty cache), one warning is logged and the pages load the files from the CDNs, as GX's
own templates do.

``python -m offline_eval.io.gx_assets`` fills the cache (``make install`` runs it).
"""
from __future__ import annotations

import base64
import functools
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from offline_eval.config import Settings
from offline_eval.io.paths import report_assets_dir

log = logging.getLogger(__name__)

MANIFEST = Path(__file__).with_name("gx_assets.json")
DEFAULT_REGISTRY = "https://registry.npmjs.org"
REGISTRY_ENV = "OFFLINE_EVAL_NPM_REGISTRY"
CACHE_ENV = "OFFLINE_EVAL_GX_ASSETS_CACHE"
# Seconds per request: a firewalled network that drops packets must not hold the gate for long.
FETCH_TIMEOUT = 20.0


class AssetsUnavailable(Exception):
    """The tarballs could not be fetched or did not match their pinned integrity."""


@dataclass(frozen=True)
class Manifest:
    packages: dict[str, str]  # "name@version" -> sha512 integrity of its npm tarball
    files: dict[str, tuple[str, str]]  # CDN URL -> (package, path in the package)
    also: tuple[tuple[str, str], ...]  # (package, path) the files load in turn (Font Awesome's webfonts)
    digest: str  # of the manifest's bytes: names the shared folder, so a new pin gets a new folder

    def local_path(self, url: str) -> str:
        """Where the file a CDN URL names sits in the vendor folder: ``<package>/<path>``."""
        try:
            package, path = self.files[url]
        except KeyError:
            raise KeyError(f"{url} is not in {MANIFEST.name}: pin it there to serve it with the Data Docs") from None
        return f"{package}/{path}"

    def wanted(self) -> list[tuple[str, str]]:
        return sorted(set(self.files.values()) | set(self.also))


@functools.cache
def manifest() -> Manifest:
    raw = MANIFEST.read_bytes()
    data = json.loads(raw)
    return Manifest(
        packages=dict(data["packages"]),
        files={url: (f["package"], f["path"]) for url, f in data["files"].items()},
        also=tuple((f["package"], f["path"]) for f in data["also"]),
        digest=hashlib.sha256(raw).hexdigest()[:12],
    )


def registry() -> str:
    return os.environ.get(REGISTRY_ENV) or DEFAULT_REGISTRY


def cache_dir() -> Path:
    """The tarball cache: beside the installed package by default, so one fetch (``make
    install``, or an image build) serves every run of that environment."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured) if configured else Path(sys.prefix) / "share" / "offline-eval" / "gx-assets"


def tarball_url(package: str, registry_url: str) -> str:
    """npm's tarball address of ``name@version``: <registry>/<name>/-/<name without scope>-<version>.tgz."""
    name, version = package.rsplit("@", 1)
    return f"{registry_url.rstrip('/')}/{name}/-/{name.rsplit('/', 1)[-1]}-{version}.tgz"


def _integrity(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def _cached_name(package: str) -> str:
    return package.replace("/", "+") + ".tgz"  # scoped names hold a slash


def fetch(cache: Path | None = None, registry_url: str | None = None) -> dict[str, Path]:
    """{package: its verified tarball in the cache}, downloading the missing ones; a cached file
    that no longer matches its integrity is fetched again. AssetsUnavailable on any failure."""
    cache = cache or cache_dir()
    registry_url = registry_url or registry()
    out = {}
    for package, integrity in manifest().packages.items():
        path = cache / _cached_name(package)
        if path.is_file() and _integrity(path.read_bytes()) == integrity:
            out[package] = path
            continue
        url = tarball_url(package, registry_url)
        try:
            with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT) as response:  # noqa: S310 (https or a mirror)
                data = response.read()
        except (OSError, ValueError) as e:  # URLError and timeouts are OSErrors
            raise AssetsUnavailable(f"cannot fetch {url}: {e}") from e
        if (got := _integrity(data)) != integrity:
            raise AssetsUnavailable(f"{url} does not match its pinned integrity ({got[:20]}... instead of "
                                    f"{integrity[:20]}...): not used")
        try:
            cache.mkdir(parents=True, exist_ok=True)
            _write_atomic(path, data)
        except OSError as e:
            raise AssetsUnavailable(f"cannot write the asset cache {cache}: {e}") from e
        out[package] = path
    return out


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _install_once(target: Path, fill: Callable[[Path], object]) -> Path:
    """``target`` filled by ``fill(tmp)`` in a hidden sibling, then renamed into place. A folder
    that exists is complete (only a rename makes it) and is never written again: several days
    validating at once each build their own copy, and the first rename wins."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    try:
        fill(tmp)
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, target)
        except OSError:
            if not target.is_dir():  # not the loser of a race: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def install_vendor(assets_root: Path, tarballs: dict[str, Path]) -> Path:
    """The files of the manifest, extracted from their tarballs into the shared vendor folder."""
    def fill(tmp: Path) -> None:
        by_package: dict[str, list[str]] = {}
        for package, path in manifest().wanted():
            by_package.setdefault(package, []).append(path)
        for package, paths in by_package.items():
            with tarfile.open(tarballs[package], "r:gz") as tar:
                for path in paths:
                    # npm tarballs hold their files under package/; the manifest's paths are plain
                    # relative paths, checked so that none leaves the folder.
                    rel = PurePosixPath(path)
                    if rel.is_absolute() or ".." in rel.parts:
                        raise ValueError(f"bad path {path!r} in {MANIFEST.name}")
                    member = tar.extractfile(f"package/{path}")
                    if member is None:
                        raise AssetsUnavailable(f"{package} has no file {path}")
                    out = tmp / package / rel
                    out.parent.mkdir(parents=True, exist_ok=True)
                    out.write_bytes(member.read())
    return _install_once(assets_root / f"vendor-{manifest().digest}", fill)


def gx_static_source() -> Path:
    """GX's own static folder (favicon, logo, fonts), found without importing GX (seconds)."""
    spec = importlib.util.find_spec("great_expectations")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("great_expectations is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "render" / "view" / "static"


def install_static(assets_root: Path) -> Path:
    """One copy of GX's static folder per GX version, shared by every day's site."""
    version = importlib.metadata.version("great-expectations")
    return _install_once(assets_root / f"static-{version}",
                         lambda tmp: shutil.copytree(gx_static_source(), tmp, dirs_exist_ok=True))


@dataclass(frozen=True)
class SiteAssets:
    """Where a site's pages find the shared folders, as URLs relative to the site's root
    folder (ending in /). None: the vendor files come from the CDNs / GX copies its static
    folder into the site, as GX does by default."""

    vendor: str | None
    static: str | None

    def as_config(self) -> dict[str, str | None]:
        return {"vendor": self.vendor, "static": self.static}


def _href(folder: Path, site_dir: Path) -> str:
    return os.path.relpath(folder, site_dir).replace(os.sep, "/") + "/"


def prepare(settings: Settings, site_dir: Path, *, registry_url: str | None = None,
            cache: Path | None = None) -> SiteAssets:
    """The shared folders of the Data Docs at ``site_dir`` (a folder of the reports), installed
    when missing. Never raises for the docs' sake: a missing piece is logged once and left to
    GX's defaults."""
    root = report_assets_dir(settings) / "gx"
    vendor = static = None
    target = root / f"vendor-{manifest().digest}"
    try:
        vendor = target if target.is_dir() else install_vendor(root, fetch(cache, registry_url))
    except (AssetsUnavailable, OSError, tarfile.TarError, ValueError) as e:
        log.warning("Data Docs pages will load jQuery, Bootstrap and the other page assets from public CDNs "
                    "(they show no page list without network access): %s. Run `python -m "
                    "offline_eval.io.gx_assets` where the npm registry is reachable, or set %s to a mirror.",
                    e, REGISTRY_ENV)
    try:
        static = install_static(root)
    except OSError as e:
        log.warning("GX's static folder is copied into the day's Data Docs site: cannot share it in %s: %s", root, e)
    return SiteAssets(vendor=_href(vendor, site_dir) if vendor else None,
                      static=_href(static, site_dir) if static else None)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        tarballs = fetch()
    except AssetsUnavailable as e:
        log.error("GX Data Docs assets not fetched: %s (validation will fall back to the CDNs)", e)
        return 1
    log.info("GX Data Docs assets: %d npm tarballs verified in %s", len(tarballs), cache_dir())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
