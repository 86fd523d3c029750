"""Building one stage: its base, then each instruction in order.

This module only coordinates: config instructions are pure functions
(builder/steps/config_steps.py), filesystem instructions run their action between
two snapshots (layers/) and turn the change into a layer. The stage's rootfs
is extracted lazily: a stage of config instructions only never downloads a
layer.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from builder.cache.cache_key import layer_format, sources_digest, start_key, step_key
from builder.engine.direct_copy import PendingCopies, reads_of, try_direct_copy
from builder.engine.phases import phase
from builder.engine.session import BuildSession, StageResult
from builder.engine.stage_tree import stack_rootfs
from builder.execution.binfmt import require_runnable
from builder.execution.inplace import InPlaceRunner
from builder.execution.network import step_network_mode
from builder.execution.rootless import chown_hint
from builder.execution.run_mounts import RunMounts
from builder.execution.run_step import run_step, walk_mode
from builder.execution.sandbox import SANDBOX_IGNORED, Bind, RunFailed, RunSpec
from builder.execution.stacked_rootfs import StackedRootfs
from builder.execution.work_tmpfs import WorkDirFull, filesystem_full
from builder.frontend import instructions as ins
from builder.frontend.dockerfile import parse_trigger
from builder.frontend.globmatch import BadPatternError, match_path, validate_pattern
from builder.frontend.heredoc import Heredoc, heredoc_run
from builder.frontend.plan import DEFAULT_PATH, BuildPlan, Stage
from builder.image.base import materialize, scratch_state
from builder.image.platforms import stage_platform, with_platform
from builder.image.squash import squash_since
from builder.image.state import ImageState, add_history, append_layer, timestamp
from builder.steps.add_sources import archive_kind, download, is_url, redact_url, unpack_archive
from builder.steps.config_steps import CONFIG_INSTRUCTIONS, StageFlags, apply_config_step, command_argv
from builder.steps.copy import (
    CopyOptions,
    copy_into,
    copy_with_parents,
    follow_source,
    make_parents,
    on_the_way,
    parse_chmod,
    reachable,
    select_sources,
    source_prefixes,
    write_heredocs,
)
from builder.steps.fetch_guard import FetchGuard
from builder.steps.history import BUILDKIT_COMMENT, run_created_by
from builder.steps.userdb import resolve_chown, resolve_exec_user
from layers.changes import Change
from layers.extract import extract_layer
from layers.securepath import resolve_in_root
from layers.walk import Snapshot, diff
from layers.writer import write_layer
from oci.errors import DockerfileError, WharfieError
from oci.layer import Layer, StoredLayer
from oci.models import History, Platform

__all__ = ["StageBuilder"]


class StageBuilder:
    def __init__(self, session: BuildSession, plan: BuildPlan, stage: Stage) -> None:
        self.session = session
        self.plan = plan
        self.stage = stage
        self.rootfs = session.work_dir / f"stage-{stage.index}"
        self.extracted = False
        self.tree: StackedRootfs | None = None  # the rootfs, when stacked on the machine's unpacked layers
        self.pending = PendingCopies()  # direct COPYs whose files are not in the rootfs yet
        self.flags = StageFlags()
        self.key = ""
        self.previous_key = ""
        self.cache_hitting = True  # lookups stop at the first miss
        self.cacheable = True  # --cache-run-layers / --cache-copy-layers false turn it off per kind
        self.step_keys: list[tuple[str, int]] = []
        self.state = self._base_state()
        self.base = (len(self.state.layers), len(self.state.config.history))  # where the stage's own steps start
        self.base_snapshot: Snapshot | None = None  # --single-snapshot: the base's tree, taken once extracted
        parent = session.results[stage.base_stage].scope if stage.base_stage is not None else None
        self.scope = plan.initial_scope(stage, self.state.config.config.env or (), parent)

    # -- base -----------------------------------------------------------------
    def _base_state(self) -> ImageState:
        base = self.stage.base
        if self.stage.base_stage is not None:
            parent = self.session.results[self.stage.base_stage]
            self.key = parent.key
            return parent.state
        platform = self.platform
        if base == "scratch":
            self.key = start_key("scratch", platform, self._layer_format())
            return scratch_state(platform, path=DEFAULT_PATH)
        with phase("pull", f"FROM {base}"):
            self.session.log.info("FROM %s", base)
            state, _ref, digest = self.session.image(base, platform)
        self.key = start_key(str(digest), platform, self._layer_format())
        if self.stage.platform or self.session.options.platform_requested:
            state = with_platform(state, platform, base, self.session.log)
        return state

    def _layer_format(self) -> str:
        options = self.session.options
        return layer_format(options.output.compression, options.output.compression_level, options.source_date_epoch)

    @property
    def platform(self) -> Platform:
        """FROM --platform, else the build's --platform; a stage FROM another has that stage's."""
        if self.stage.base_stage is not None:
            return self.session.results[self.stage.base_stage].state.config.platform
        return stage_platform(self.stage.platform, self.session.options.platform)

    def ensure_rootfs(self) -> Path:
        """Extract the stage's filesystem the first time a step needs it.

        A stage built FROM another starts from a copy of that stage's tree when
        there is one; only the layers added since (cache hits) are extracted.
        """
        if self.extracted:
            return self.rootfs
        done = 0
        parent = self.session.results.get(self.stage.base_stage) if self.stage.base_stage is not None else None
        stacked_parent = (parent.tree, parent.state) if parent is not None and parent.tree is not None else None
        # --single-snapshot walks the base's tree before the stage's own layers are added: extracted, not stacked.
        stackable = not self.session.options.single_snapshot
        if stackable and (parent is None or parent.rootfs is None or stacked_parent is not None):
            self.tree = stack_rootfs(self.session.layer_store, self.rootfs, self.state, stacked_parent)
        if self.tree is not None:
            self.session.trees.append(self.tree)
            self.extracted = True
            return self.rootfs
        if parent is not None and parent.rootfs is not None:
            _copy_tree(parent.rootfs, self.rootfs)
            done = len(parent.state.layers)
        self.rootfs.mkdir(parents=True, exist_ok=True)
        materialize(replace(self.state, layers=self.state.layers[done:self.base[0]]), self.rootfs)
        self._snapshot_base()
        materialize(replace(self.state, layers=self.state.layers[max(done, self.base[0]):]), self.rootfs)
        self.extracted = True
        return self.rootfs

    # -- --single-snapshot ------------------------------------------------------
    def _snapshot_ignore(self) -> tuple[str, ...]:
        return (*SANDBOX_IGNORED, *self.session.options.ignore_paths)

    def _snapshot_base(self) -> None:
        """With --single-snapshot, the base's tree once extracted (before the stage's own layers)."""
        if self.session.options.single_snapshot:
            mode = walk_mode(self.session.options.snapshot_mode)
            self.base_snapshot = Snapshot.take(self.rootfs, self._snapshot_ignore(), mode=mode)

    def _single_snapshot(self) -> None:
        """kaniko's --single-snapshot: the stage's own layers become one, from its base's tree to its final tree."""
        layers, history = self.base
        if len(self.state.layers) - layers < 2:
            return
        rootfs = self.ensure_rootfs()
        self.pending.materialize(rootfs)  # the direct COPYs' files are part of the stage's tree
        assert self.base_snapshot is not None
        after = Snapshot.take(rootfs, self._snapshot_ignore(), mode=walk_mode(self.session.options.snapshot_mode))
        layer = self._write_layer(diff(self.base_snapshot, after), rootfs)
        self.state = squash_since(self.state, layers_kept=layers, history_kept=history, layer=layer)
        self.step_keys = []  # the steps' layers are gone: --cache-from of this image must not reuse them

    # -- the loop -------------------------------------------------------------
    def run(self) -> StageResult:
        for instr in (*self._onbuild_triggers(), *self.stage.instructions):
            self.session.offer_layers(self.stage.index, self.state.layers)  # the last step's layer goes up now
            try:
                with phase("step", instr.original or instr.keyword):
                    self.session.log.info("%s", instr.original or instr.keyword)
                    self.step(instr)
            except DockerfileError:
                raise
            except RunFailed as exc:
                tail = "; ".join(line for line in exc.tail[-3:] if line.strip())
                raise self._step_error(f"RUN failed (exit {exc.exit_code_of_step}): {self._where(instr)}: "
                                       f"{_one_line(instr.original)}" + (f" ({tail})" if tail else ""),
                                       no_room=exc.no_room) from None
            except WharfieError as exc:
                raise WharfieError(f"{self._where(instr)}: {exc}") from None
            except OSError as exc:  # the filesystem refused the step (a name too long, no space left, ...)
                name = os.path.basename(str(exc.filename or ""))
                shown = f" ({name[:60]}{'...' if len(name) > 60 else ''})" if name else ""
                raise self._step_error(f"{self._where(instr)}: {exc.strerror or exc}{shown}",
                                       no_room=exc.errno in (errno.ENOSPC, errno.EDQUOT)) from None
        if self.session.options.single_snapshot:
            self._single_snapshot()
        self.session.offer_layers(self.stage.index, self.state.layers)
        if self.pending and self.stage.index != self.plan.needed[-1].index:
            self.pending.materialize(self.rootfs)  # a later stage may read this one's tree
        return StageResult(self.stage.index, self.stage.name, self.state, self.rootfs if self.extracted else None,
                           self.scope, self.key, tuple(self.step_keys), tree=self.tree)

    def _step_error(self, message: str, *, no_room: bool) -> WharfieError:
        """A failed step's error; a `WorkDirFull` when it ran out of room (the CLI may build again with the work
        dir elsewhere: builder/execution/work_tmpfs.py)."""
        if no_room or filesystem_full(self.session.work_dir):
            return WorkDirFull(f"{message} (no room left in the work dir {self.session.work_dir.parent})")
        return WharfieError(message)

    def _onbuild_triggers(self) -> list[ins.Instruction]:
        """The base's ONBUILD triggers run first, then are cleared, as BuildKit does (for a
        base image and for a stage of this Dockerfile alike)."""
        triggers = self.state.config.config.on_build
        if not triggers:
            return []
        self.state = self.state.with_config(self.state.config.with_container(on_build=None))
        line = self.stage.from_instr.line
        return [parse_trigger(text, line=line, filename=self.session.options.dockerfile.name) for text in triggers]

    def _where(self, instr: ins.Instruction) -> str:
        return f"{self.session.options.dockerfile.name}:{instr.line}"

    def step(self, instr: ins.Instruction) -> None:
        undefined: set[str] = set()
        expanded = self.plan.expand(instr, self.scope, undefined=undefined)
        for name in sorted(undefined):
            self.session.log.warning("warning: %s: UndefinedVar: usage of undefined variable '$%s' "
                                     "(declare it with ARG, or set it with ENV)", self._where(instr), name)
        sources = self._sources_identity(expanded) if isinstance(expanded, (ins.COPY, ins.ADD)) else \
            self._binds_identity(expanded) if isinstance(expanded, ins.RUN) else ""
        self.previous_key = self.key
        self.key = step_key(self.key, expanded, args=self.scope.args, env=self.scope.env, sources=sources)
        self.session.log.debug("  cache key %s", self.key)
        cache = self.session.options.cache
        self.cacheable = not ((isinstance(expanded, ins.RUN) and not cache.cache_run_layers)
                              or (isinstance(expanded, (ins.COPY, ins.ADD)) and not cache.cache_copy_layers))
        # advance() expands ENV itself, so it gets the raw instruction (no double expansion).
        self.scope = self.plan.advance(self.scope, instr)
        if self.pending and type(expanded) not in CONFIG_INSTRUCTIONS:
            reads = reads_of(expanded, self.state.config.config.working_dir or "/")
            if reads is None or self.pending.touches(self.rootfs, reads):
                self.pending.materialize(self.rootfs)  # the step may read what direct COPYs left out
        if type(expanded) in CONFIG_INSTRUCTIONS:
            config, created_by = apply_config_step(self.state.config, expanded, self.flags)
            self.state = add_history(self.state.with_config(config), self._history(created_by, empty=True))
        elif isinstance(expanded, ins.WORKDIR):
            self._workdir(expanded)
        elif isinstance(expanded, ins.RUN):
            self._run(expanded)
        elif isinstance(expanded, (ins.COPY, ins.ADD)):
            self._copy(expanded)
        else:
            raise DockerfileError(f"{expanded.keyword} is not supported here", line=instr.line)

    def _history(self, created_by: str, *, empty: bool) -> History:
        return History(created=timestamp(self.session.options.source_date_epoch), created_by=created_by,
                       comment=BUILDKIT_COMMENT, empty_layer=empty)

    def step_runner(self, scratch: Path) -> InPlaceRunner | None:
        """What runs a RUN step instead of the sandbox: nothing here (`InPlaceStageBuilder` runs it on `/`)."""
        return None

    # -- filesystem steps -----------------------------------------------------
    def _snapshot_step(self, action: Callable[[Path], None], created_by: str, *, ignore: tuple[str, ...] = ()) -> None:
        """Run a filesystem step, or reuse its cached result; its layer is the snapshot's difference."""
        if self._reuse_cached(created_by):
            return
        rootfs = self.ensure_rootfs()
        options = self.session.options
        ignore = (*ignore, *options.ignore_paths)
        mode = walk_mode(options.snapshot_mode)
        before = Snapshot.take(rootfs, ignore, mode=mode)
        action(rootfs)
        changes = diff(before, Snapshot.take(rootfs, ignore, mode=mode))
        self._commit(self._write_layer(changes, rootfs), created_by)

    def _write_layer(self, changes: list[Change], source_root: Path) -> StoredLayer | None:
        """The step's layer from its changes (read from `source_root`), or None when it changed nothing."""
        if not changes:
            return None
        output = self.session.options.output
        layer = write_layer(changes, source_root, self.session.store, compression=output.compression,
                            level=output.compression_level, epoch=self.session.options.source_date_epoch,
                            oci=output.manifest_format == "oci", growing=self.session.growing_layer(self.stage.index))
        self.session.log.info("  layer %s (%d changes, %d bytes)", layer.digest.short, len(changes), layer.size)
        return layer

    def _commit(self, layer: StoredLayer | None, created_by: str) -> None:
        """Record a step that ran: history, its key's place in the image, the cache entry."""
        history = self._history(created_by, empty=layer is None)
        self.state = append_layer(self.state, layer, history) if layer else add_history(self.state, history)
        self._record_step(layer is not None)
        if self.cacheable:
            self.session.cache.store_entry(self.key, layer, history,
                                           {"previous-key": self.previous_key, "instruction": created_by})

    def _record_step(self, made_layer: bool) -> None:
        self.step_keys.append((self.key, len(self.state.layers) - 1 if made_layer else -1))

    def _reuse_cached(self, created_by: str) -> bool:
        if not self.cache_hitting or not self.cacheable:
            return False
        hit = self.session.cache.lookup(self.key)
        if hit is None:
            self.cache_hitting = False
            return False
        created = timestamp(self.session.options.source_date_epoch) if self.session.options.source_date_epoch \
            is not None else hit.created
        history = History(created=created, created_by=created_by, comment=BUILDKIT_COMMENT,
                          empty_layer=hit.layer is None)
        if hit.layer is not None:
            self.state = append_layer(self.state, hit.layer, history)
            if self.extracted:
                self._extract_onto(hit.layer)
        else:
            self.state = add_history(self.state, history)
        self._record_step(hit.layer is not None)
        return True

    def _extract_onto(self, layer: Layer) -> None:
        """Keep an already extracted rootfs in step with a cached layer appended to the state."""
        with layer.open_compressed() as blob:
            extract_layer(blob, self.rootfs)

    def _sources_identity(self, instr: ins.COPY | ins.ADD) -> str:
        """What a COPY/ADD's result depends on besides the instruction: its sources' content."""
        if not self.session.cache.active or instr.heredocs:
            return ""
        source = getattr(instr, "from_", None)
        if source is not None:
            return self._from_identity(source)
        if any(is_url(s) for s in instr.sources):
            return f"uncacheable:{os.urandom(16).hex()}"  # a URL's content is only known by fetching it
        context = self.session.options.context
        _root, excluded = self._source_root(instr, context)  # .dockerignore and --exclude, as the copy sees them
        selected = select_sources(context, instr.sources, what=instr.keyword, excluded=excluded)
        # A source that is a symlink is copied as what it points to: its key is that content too.
        followed = [follow_source(context, path, instr.keyword) for path in selected]
        return sources_digest(context, followed, excluded)

    def _from_identity(self, source: str) -> str:
        """A `--from` source as a key part: the stage's last key, or the image's digest."""
        index = self.plan.resolve_from(source)
        if index is not None:
            return f"stage:{self.session.results[index].key}"
        _state, _ref, digest = self.session.image(source, self.platform)
        return f"image:{digest}"

    def _binds_identity(self, instr: ins.RUN) -> str:
        """What a RUN's bind mounts show, as BuildKit keys them: else changing only a bound file (a build
        script) would be answered by the layer another content made, and one branch could poison another's."""
        binds = [mount for mount in instr.mounts if mount.type == "bind"]
        if not self.session.cache.active or not binds:
            return ""
        context = self.session.options.context
        ignore = self.session.ignore
        parts = []
        for mount in binds:
            if mount.from_:
                parts.append(f"{self._from_identity(mount.from_)}:{mount.source or '/'}")
                continue
            source = resolve_in_root(context, mount.source or "/", follow_last=True)
            found = os.path.lexists(source)
            parts.append(sources_digest(context, [source], ignore.matches if ignore.patterns else None)
                         if found else f"missing:{mount.source}")
        return "\n".join(parts)

    def _workdir(self, instr: ins.WORKDIR) -> None:
        current = self.state.config.config.working_dir or "/"
        # Docker keeps an absolute WORKDIR as written (a trailing slash too); a relative one joins the current.
        path = instr.path if instr.path.startswith("/") else posixpath.normpath(posixpath.join(current, instr.path))
        self.state = self.state.with_config(self.state.config.with_container(working_dir=path))

        def mkdir(rootfs: Path) -> None:
            target = resolve_in_root(rootfs, path, follow_last=True)
            if not target.is_dir():
                user = resolve_exec_user(rootfs, self.state.config.config.user)
                make_parents(rootfs, target, uid=user.uid, gid=user.gid)
                target.mkdir(mode=0o755)
                os.chown(target, user.uid, user.gid)

        if path == "/":
            self.state = add_history(self.state, self._history(f"WORKDIR {path}", empty=True))
        else:
            self._snapshot_step(mkdir, f"WORKDIR {path}")

    def _run(self, instr: ins.RUN) -> None:
        config = self.state.config.config
        argv, script = _run_argv(instr, config.shell)
        created_by = run_created_by(argv, list(self.scope.arg_values().items()))
        if self._reuse_cached(created_by):
            return
        require_runnable(self.state.config.platform)  # before the rootfs is extracted: fail at once
        env = self.plan.run_env(self.scope)
        env.setdefault("PATH", DEFAULT_PATH)
        options = self.session.options
        network = step_network_mode(instr.network, build_mode=options.network,
                                    host_allowed=options.allow_host_network, where=self._where(instr))
        rootfs = self.ensure_rootfs()
        user = resolve_exec_user(rootfs, config.user)
        env.setdefault("HOME", user.home)
        workdir = config.working_dir or "/"
        with tempfile.TemporaryDirectory(dir=self.session.work_dir, prefix="run-") as tmp:
            scratch = Path(tmp)
            mounts = RunMounts(instr.mounts, workdir=workdir, context=options.context, cache_root=options.cache_dir,
                               secrets={s.id: s for s in options.secrets}, scratch=scratch,
                               stage_root=lambda name: _mount_source_root(self, name, scratch),
                               ignore=self.session.ignore)
            with mounts as resolved:
                binds = tuple(resolved.binds) + _script_binds(script, scratch)
                spec = RunSpec(root=rootfs, argv=list(argv), env={**env, **resolved.env}, cwd=workdir, uid=user.uid,
                               gid=user.gid, groups=list(user.groups), network=network,
                               binds=binds, tmpfs=tuple(resolved.tmpfs))
                _run_and_commit(self, spec, created_by, scratch)

    def _copy(self, instr: ins.COPY | ins.ADD) -> None:
        what = instr.keyword
        workdir = self.state.config.config.working_dir or "/"
        with tempfile.TemporaryDirectory(dir=self.session.work_dir, prefix="src-") as scratch:

            def place(rootfs: Path) -> None:
                # Sources are found only now: a cache hit never extracts a --from stage or image.
                src_root, excluded = self._source_root(instr, Path(scratch))
                names = write_heredocs(instr.heredocs, src_root) if instr.heredocs else list(instr.sources)
                uid, gid = resolve_chown(rootfs, instr.chown) if instr.chown else (0, 0)
                chmod = parse_chmod(instr.chmod, instr.line)
                # COPY --from without --chown keeps the source's owners, as docker does.
                keep_owner = getattr(instr, "from_", None) is not None and not instr.chown
                options = CopyOptions(uid=uid, gid=gid, chmod=chmod, excluded=excluded, keep_owner=keep_owner)
                if isinstance(instr, ins.ADD):
                    self._add(rootfs, src_root, names, instr, options, workdir)
                    return
                if isinstance(instr, ins.COPY) and instr.parents:
                    copy_with_parents(rootfs, src_root, names, instr.dest, workdir, options, excluded)
                    return
                sources = select_sources(src_root, names, what=what, excluded=excluded, match=match_path)
                copy_into(rootfs, src_root, sources, instr.dest, workdir=workdir, options=options, what=what)

            sources = " ".join(redact_url(s) for s in instr.sources)  # no URL credentials in history
            created_by = f"{instr.keyword} {sources} {instr.dest} # buildkit"
            if not self._reuse_cached(created_by) and not try_direct_copy(self, instr, created_by):
                self._snapshot_step(place, created_by)

    def _source_root(self, instr: ins.COPY | ins.ADD, scratch: Path) -> tuple[Path, Callable[[str], bool] | None]:
        excludes = tuple(instr.exclude)
        for pattern in excludes:
            try:
                validate_pattern(pattern)
            except BadPatternError as exc:
                raise DockerfileError(f"--exclude={pattern}: {exc}", line=instr.line) from None

        def excluded_by_flag(rel: str) -> bool:
            return any(match_path(p, rel) or match_path(p, rel.rpartition("/")[2]) for p in excludes)

        if instr.heredocs:
            return scratch, None
        source = getattr(instr, "from_", None)
        if source is None:
            ignore = self.session.ignore

            def excluded(rel: str) -> bool:
                return ignore.matches(rel) or excluded_by_flag(rel)

            return self.session.options.context, excluded
        return self._from_root(source, scratch, instr), (excluded_by_flag if excludes else None)

    def _from_root(self, source: str, scratch: Path, instr: ins.COPY | ins.ADD) -> Path:
        """The tree a COPY --from reads: a built stage's rootfs, or just the copied paths of a
        stage that was never extracted (fully cached) or of an image."""
        rootfs, state = _from_source(self, source)
        if rootfs is not None:
            return rootfs
        partial = scratch / "from"
        prefixes = source_prefixes(instr.sources)
        try:
            materialize(state, partial, select=lambda path: on_the_way(path, prefixes))
            if all(reachable(partial, prefix) for prefix in prefixes):
                self.session.log.info("  extracted only %s of %s", ", ".join(p or "/" for p in prefixes), source)
                return partial
        except WharfieError:
            pass  # e.g. a hard link to a path left out: fall back to the whole tree
        shutil.rmtree(partial, ignore_errors=True)
        materialize(state, partial)
        return partial

    def _add(self, rootfs: Path, src_root: Path, names: list[str], instr: ins.ADD, options: CopyOptions,
             workdir: str) -> None:
        local = [n for n in names if not is_url(n)]
        downloads = Path(tempfile.mkdtemp(dir=self.session.work_dir, prefix="add-"))
        try:
            guard = FetchGuard(allow_host=self.session.options.network == "host")  # never the host's own services
            fetched = [download(n, downloads, checksum=instr.checksum, what="ADD", guard=guard)
                       for n in names if is_url(n)]
            if fetched:
                opts = options if options.chmod is not None else replace(options, chmod=0o600)
                copy_into(rootfs, downloads, fetched, instr.dest, workdir=workdir, options=opts, what="ADD")
            sources = select_sources(src_root, local, what="ADD", excluded=options.excluded) if local else []
            plain = []
            for src in sources:
                kind = archive_kind(src)
                if kind is None:
                    plain.append(src)
                    continue
                dest = instr.dest if instr.dest.startswith("/") else f"{workdir.rstrip('/')}/{instr.dest}"
                owner = (options.uid, options.gid) if instr.chown else None
                unpack_archive(src, kind, resolve_in_root(rootfs, dest, follow_last=True), owner=owner, rootfs=rootfs)
            if plain:
                copy_into(rootfs, src_root, plain, instr.dest, workdir=workdir, options=options, what="ADD")
        finally:
            shutil.rmtree(downloads, ignore_errors=True)


def _copy_tree(source: Path, dest: Path) -> None:
    """A full copy keeping owners, modes, links and xattrs (`cp -a`, which does all of that)."""
    if dest.exists():
        shutil.rmtree(dest)
    done = subprocess.run(["cp", "-a", "--", str(source), str(dest)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise WharfieError(f"copying the base stage's filesystem failed: {done.stderr.strip() or done.returncode}")


def _one_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= 120 else first[:117] + "..."


# -- RUN (builder/execution/run_step.py runs it; these only connect it to the stage) ------
def _run_argv(instr: ins.RUN, shell: tuple[str, ...] | None) -> tuple[tuple[str, ...], Heredoc | None]:
    """The step's argv, and the heredoc to mount as its executable (`RUN <<EOF` starting with #!)."""
    if instr.is_exec:
        return tuple(instr.command), None
    plan = heredoc_run(str(instr.command), instr.heredocs)
    if plan.executable is not None:
        return (f"/dev/pipes/{plan.executable.name}",), plan.executable
    return tuple(command_argv(plan.script or "", False, shell)), None


def _script_binds(script: Heredoc | None, scratch: Path) -> tuple[Bind, ...]:
    """BuildKit runs a #! heredoc as a file at /dev/pipes/NAME: write it, mount it read-only there."""
    if script is None:
        return ()
    path = scratch / f"heredoc-{script.name}"
    path.write_text(script.text)
    path.chmod(0o755)
    return (Bind(str(path), f"/dev/pipes/{script.name}", readonly=True),)


def _run_and_commit(builder: StageBuilder, spec: RunSpec, created_by: str, scratch: Path) -> None:
    """Run the step in its sandbox (overlay or walk snapshots), then commit its changes as a layer."""
    options = builder.session.options
    ignore = (*SANDBOX_IGNORED, *options.ignore_paths)
    runner = builder.step_runner(scratch)
    if runner is not None:
        ignore = (*ignore, *runner.ignore, *runner.mount_ignores(spec))
    try:
        with run_step(spec, isolation=options.isolation, scratch=scratch, ignore=ignore,
                      snapshot_mode=options.snapshot_mode, output=None if options.quiet else builder.session.step_output,
                      runner=runner, fold=builder.tree.fold if builder.tree is not None else None) as outcome:
            layer = builder._write_layer(outcome.changes, outcome.source_root)
    except RunFailed as exc:
        hint = chown_hint(options.isolation.mapping) if options.isolation.rootless else None
        if hint and any("Invalid argument" in line or "cannot switch to uid" in line for line in exc.tail):
            exc.tail.append(hint)
        raise
    builder._commit(layer, created_by)


def _from_source(builder: StageBuilder, source: str, *, allow_index: bool = True) -> tuple[Path | None, ImageState]:
    """A `--from` source: a built stage's extracted tree (None if it never extracted one) and state,
    else an image's state. A mount's `from=` names a stage by name only, as the plan resolved it."""
    index = builder.plan.resolve_from(source, allow_index=allow_index)
    if index is not None:
        result = builder.session.results[index]
        return result.rootfs, result.state
    state, _ref, _digest = builder.session.image(source, builder.platform)
    return None, state


def _mount_source_root(builder: StageBuilder, source: str, scratch: Path) -> Path:
    """The tree a `RUN --mount=type=bind,from=SOURCE` reads: a stage's rootfs, else its (or an image's) layers."""
    rootfs, state = _from_source(builder, source, allow_index=False)
    if rootfs is not None:
        return rootfs
    tree = Path(tempfile.mkdtemp(dir=scratch, prefix="mount-from-"))
    materialize(state, tree)
    return tree
