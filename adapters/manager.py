"""Hot-swap LoRA adapters on the one base model, for many users, through the engine's lock.

The base model loads once. The first adapter wraps it in a PeftModel; later ones are added
beside it (PEFT `add_adapter`), and switching points every LoRA layer at another adapter
(PEFT's per-layer `set_adapter` state, ~0.6 ms), never reloading the base. At most
`max_resident_adapters` stay loaded (the least recently used is evicted), and removing the
last one unwraps the PeftModel, so the bare base model is back exactly as it was.

`AdapterManager` installs itself as `engine.use_adapter`: every generation enters it under
`engine.lock` (the lock every load and removal also holds), so one generation's adapter can
never leak into another's. Adapters are checked by `adapters.validate` before PEFT sees them,
and the loaded tensors are checked again (shapes are decisive) before they reach the model.

Privacy: an upload is visible to, and usable by, only the session that uploaded it, unless
the operator sets `publish_uploads` or calls `publish`. The UI calls `resolve(name, session)`
and passes the returned `AdapterInfo.key` to `Engine.stream(adapter=...)`; an upload's key holds
a digest of its owner's session id, which no other session is ever shown.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from adapters.card import staleness_note
from adapters.errors import AdapterError, AdapterNotAvailable, AdapterRejected
from adapters.registry import AdapterInfo, AdapterRegistry, SkippedAdapter, visible_to
from adapters.spec import ModelSpec
from adapters.store import SOURCES, UPLOADED, AdapterStore, owner_id, sanitize_name
from adapters.upload import stage_upload
from adapters.validate import (
    CARD_FILE,
    WEIGHTS_FILE,
    check_adapter_folder,
    check_tensors,
    load_weights,
    parse_json_object,
    read_small_file,
)
from core.generation import Engine
from core.settings import Settings

log = logging.getLogger(__name__)

DEMO_DIR = Path(__file__).resolve().parent / "demo"
_UNKNOWN = object()


class AdapterManager:
    """Lists, validates, stores, loads, switches and evicts adapters on the engine's one model."""

    def __init__(self, engine: Engine, settings: Settings, demo_dir: Path | None = DEMO_DIR):
        self.engine = engine
        self.settings = settings
        self.max_bytes = int(settings.adapter_max_mb * 2**20)
        self.store = AdapterStore(settings.data_dir, demo_dir)
        import peft  # noqa: F401  (imported now, ~3 s, rather than during the first adapted answer)

        with engine.lock:
            self._base: Any = engine.loaded.model
            self._peft: Any = None  # the PeftModel wrapping _base while any adapter is resident
            # key -> (PEFT adapter name, the AdapterInfo it was loaded from), least recently used first
            self._resident: OrderedDict[str, tuple[str, AdapterInfo]] = OrderedDict()
            self._layers: list[Any] = []  # PEFT's LoRA layers in the model, found once per load/remove
            self._fast = False  # whether those layers have the two switches _activate sets directly
            self._active: str | object | None = _UNKNOWN  # PEFT adapter name the layers point at now
            spec = ModelSpec.from_model(self._base, engine.loaded.name)
            self.registry = AdapterRegistry(self.store, spec, settings.adapter_max_rank, self.max_bytes)
            engine.use_adapter = self.use_adapter

    @property
    def spec(self) -> ModelSpec:
        return self.registry.spec

    # -- listing and access ------------------------------------------------------------------
    def list_adapters(self, session: str | None) -> list[AdapterInfo]:
        """The adapters this session may use, own uploads first, then trained, published, demo."""
        usable, _ = self.registry.scan()
        mine = [i for i in usable if self._visible(i, session)]
        return sorted(mine, key=lambda i: (SOURCES.index(i.source), i.name, i.key))

    def problems(self, session: str | None) -> list[SkippedAdapter]:
        """Adapter folders this session could see that are skipped, each with its one-sentence reason."""
        _, skipped = self.registry.scan()
        return [s for s in skipped if self._visible(s, session)]

    def resolve(self, name: str, session: str | None) -> AdapterInfo:
        """The adapter `name` (a key, or a bare name) as seen by `session`.

        A bare name shared by several adapters resolves to the session's own upload first,
        then trained, published and demo ones. Raises AdapterNotAvailable (one sentence) for an
        unknown name, a skipped folder, or another session's upload, without saying which.
        """
        if not isinstance(name, str) or not name.strip():
            raise AdapterNotAvailable("Choose an adapter first.")
        usable, skipped = self.registry.scan()
        visible = [i for i in usable if self._visible(i, session)]
        for info in visible:
            if info.key == name:
                return info
        named = sorted((i for i in visible if i.name == name), key=lambda i: SOURCES.index(i.source))
        if named:
            return named[0]
        for bad in skipped:
            if self._visible(bad, session) and name in (bad.key, bad.name):
                raise AdapterNotAvailable(f"Adapter {bad.name!r} cannot be used: {bad.reason.rstrip('.')}.")
        raise AdapterNotAvailable(f"No adapter named {name[:80]!r} is available to this session.")

    def staleness_note(self, info: AdapterInfo) -> str | None:
        """One sentence when `info` was trained against an older knowledge-base snapshot, else None."""
        return staleness_note(info.kb_snapshot, self.settings.data_dir)

    def _visible(self, item: AdapterInfo | SkippedAdapter, session: str | None) -> bool:
        return visible_to(item, session, self.settings.publish_uploads)

    def _resolve_key(self, key: str) -> AdapterInfo:
        """For the engine hook: a public adapter by key or name, or an upload by its full key.

        An upload's key embeds its owner's digest, which only that owner is ever shown (unless
        uploads are published), so holding the key is what proves the right to use it.
        """
        entry = self.store.entry(key)
        if entry is not None:  # a full key: only its own folder is checked (cheap, per generation)
            found = self.registry.lookup(entry)
            if isinstance(found, AdapterInfo):
                return found
            raise AdapterNotAvailable(f"Adapter {found.name!r} cannot be used: {found.reason.rstrip('.')}.")
        return self.resolve(key, None)

    # -- uploads, publishing, deleting ---------------------------------------------------------
    def upload(self, files: Sequence[str | os.PathLike], session: str, name: str | None = None) -> AdapterInfo:
        """Check an uploaded adapter and store it privately for `session`; return its info.

        `files`: the adapter's files (adapter_config.json + adapter_model.safetensors, optionally
        adapter_card.json / README.md) or one .zip holding them. Raises AdapterRejected with one
        sentence on any problem; then nothing is written and the live model is untouched (an
        upload never touches the model: it loads when first used).
        """
        if not isinstance(session, str) or not session:
            raise AdapterRejected("Uploading an adapter needs a browser session; reload the page and try again.")
        with self.store.staging() as staging:
            suggested = stage_upload(files, staging, self.max_bytes)
            final = sanitize_name(name if name and str(name).strip() else (suggested or "adapter"))
            check_adapter_folder(staging, self.spec, self.settings.adapter_max_rank, self.max_bytes)
            if (staging / CARD_FILE).exists():
                parse_json_object(read_small_file(staging / CARD_FILE), CARD_FILE)
            entry = self.store.commit_upload(staging, session, final)
        found = self.registry.lookup(entry)
        if not isinstance(found, AdapterInfo):  # only if the folder changed under us
            raise AdapterRejected(f"The uploaded adapter could not be stored: {found.reason.rstrip('.')}.")
        log.info("adapter uploaded: %s", found.key)
        return found

    def delete_upload(self, name: str, session: str) -> None:
        """Delete one of `session`'s own uploads from the store (unloading it first).

        Raises AdapterNotAvailable when `session` does not own an upload of that name.
        """
        info = self.resolve(name, session)
        if info.source != UPLOADED or not session or info.owner != owner_id(session):
            raise AdapterNotAvailable(f"You can delete only adapters you uploaded; {info.name!r} is not one.")
        with self.engine.lock:
            self._unload(info.key)
            entry = self.store.entry(info.key)
            if entry is not None:
                self.store.delete(entry)

    def publish(self, name: str, session: str | None = None) -> AdapterInfo:
        """Operator: make an upload visible to every session by moving it to `published/`.

        `name` is an upload's key, or its bare name among `session`'s uploads (or among all
        uploads when `session` is None and the name is unique). Raises AdapterNotAvailable or
        AdapterRejected (one sentence) when there is no such upload or the name is taken.
        """
        usable, _ = self.registry.scan()
        uploads = [i for i in usable if i.source == UPLOADED]
        if session is not None:
            uploads = [i for i in uploads if i.owner == owner_id(session)]
        matches = [i for i in uploads if name in (i.key, i.name)]
        if len(matches) != 1:
            count = "No" if not matches else "More than one"
            raise AdapterNotAvailable(f"{count} uploaded adapter is named {name[:80]!r}; give its key to publish it.")
        with self.engine.lock:
            self._unload(matches[0].key)
            entry = self.store.entry(matches[0].key)
            if entry is None:
                raise AdapterNotAvailable(f"The upload {name[:80]!r} is gone.")
            published = self.store.publish(entry)
        found = self.registry.lookup(published)
        if not isinstance(found, AdapterInfo):
            raise AdapterError(f"The published adapter is not usable: {found.reason.rstrip('.')}.")
        return found

    # -- the model -------------------------------------------------------------------------------
    @property
    def resident(self) -> list[str]:
        """Keys of the adapters loaded on the model, least recently used first."""
        with self.engine.lock:
            return list(self._resident)

    def load(self, name: str, session: str | None = None) -> AdapterInfo:
        """Load an adapter onto the model (if it is not resident) without activating it; return its info.

        Raises AdapterNotAvailable / AdapterRejected (one sentence); the model is then as before.
        """
        info = self.resolve(name, session) if session is not None else self._resolve_key(name)
        with self.engine.lock:
            self._adopt_live_model()
            self._ensure_loaded(info)
        return info

    def remove(self, name: str, session: str | None = None) -> bool:
        """Delete an adapter from the model (PEFT `delete_adapter`), freeing its memory; the store
        keeps it. Returns whether it was resident. Raises AdapterNotAvailable for an unknown name."""
        with self.engine.lock:
            if name not in self._resident:
                name = (self.resolve(name, session) if session else self._resolve_key(name)).key
            return self._unload(name)

    def use_adapter(self, key: str | None) -> contextlib.AbstractContextManager:
        """The engine hook: a context in which the model runs `key`'s adapter, or the bare base for None.

        Entering it raises AdapterError (a UserInputError, one sentence) when the adapter is
        unknown, not the caller's, or does not fit the model; the model is then unchanged. The
        engine enters it under `engine.lock`, once per generation.
        """
        return self._using(key)

    @contextlib.contextmanager
    def _using(self, key: str | None) -> Iterator[None]:
        with self.engine.lock:
            self._adopt_live_model()
            if key:
                self._activate(self._ensure_loaded(self._resolve_key(key)))
            elif self._peft is not None:
                self._activate(None)
            yield

    def _activate(self, adapter: str | None) -> None:
        """Point every LoRA layer at `adapter`, or disable them all for None (the bare base).

        PEFT's own `set_adapter` / `disable_adapter` walk every module of the model and reset
        requires_grad on every adapter weight (~20 ms on SmolLM2); the layers are known and the
        weights are frozen already, so only each layer's two switches are set. If a PEFT
        version lacks them, its public methods are used instead.
        """
        if adapter == self._active:
            return
        if self._fast:
            for layer in self._layers:
                layer._disable_adapters = adapter is None
                if adapter is not None:
                    layer._active_adapter = [adapter]
            if adapter is not None:
                self._peft.active_adapter = self._peft.base_model.active_adapter = adapter
        elif adapter is None:
            self._peft.base_model.disable_adapter_layers()
        else:
            self._peft.base_model.enable_adapter_layers()
            self._peft.set_adapter(adapter, inference_mode=True)
        self._active = adapter

    def _model_changed(self) -> None:
        """After PEFT added or deleted an adapter: find its layers again; their switches are unknown."""
        from peft.tuners.tuners_utils import BaseTunerLayer

        self._layers = [m for m in self._peft.modules() if isinstance(m, BaseTunerLayer)] if self._peft else []
        self._fast = bool(self._layers) and all(
            hasattr(layer, "_active_adapter") and hasattr(layer, "_disable_adapters") for layer in self._layers
        )
        self._active = _UNKNOWN

    # -- loading and unloading, always under engine.lock -------------------------------------------
    def _adopt_live_model(self) -> None:
        """If someone replaced the model (not with our PeftModel), start over on the new one."""
        model = self.engine.loaded.model
        if model is self._base or (self._peft is not None and model is self._peft):
            return
        log.info("the live model changed; adapter state is reset")
        self._base, self._peft = model, None
        self._resident.clear()
        self._model_changed()
        self.registry.reset(ModelSpec.from_model(model, self.engine.loaded.name))

    def _ensure_loaded(self, info: AdapterInfo) -> str:
        if info.key in self._resident:
            adapter, loaded_from = self._resident[info.key]
            if loaded_from is info:  # the registry hands out a new info when the files change
                self._resident.move_to_end(info.key)
                return adapter
            self._unload(info.key)  # rewritten on disk (e.g. retrained): load the new files
        checked = check_adapter_folder(info.path, self.spec, self.settings.adapter_max_rank, self.max_bytes)
        with torch.inference_mode(False):  # plain tensors even if a caller entered inference_mode first
            tensors = load_weights(info.path / WEIGHTS_FILE, self.max_bytes)
        check_tensors(tensors, checked.config, self.spec)
        while len(self._resident) >= self.settings.max_resident_adapters:
            self._unload(next(iter(self._resident)))
        # fp32 LoRA weights on any base dtype, as PEFT's own loader keeps them (autocast_adapter_dtype):
        # bf16 LoRA weights moved SmolLM2's logits by up to 0.8 from PeftModel.from_pretrained's.
        with torch.inference_mode(False):
            tensors = {k: v.to(device=self.engine.loaded.device, dtype=torch.float32) for k, v in tensors.items()}
        adapter = "a" + hashlib.sha256(info.key.encode()).hexdigest()[:16]
        self._inject(adapter, checked.config, tensors)
        self._resident[info.key] = (adapter, info)
        log.info("adapter loaded: %s (%d resident)", info.key, len(self._resident))
        return adapter

    def _inject(self, adapter: str, config: Any, tensors: dict[str, torch.Tensor]) -> None:
        """Add the adapter's LoRA layers and weights; on any failure undo them and raise AdapterError."""
        from peft import PeftModelForCausalLM, set_peft_model_state_dict

        first = self._peft is None
        try:
            with torch.inference_mode(False), torch.no_grad():
                if first:
                    self._peft = PeftModelForCausalLM(
                        self._base, config.lora_config(), adapter_name=adapter,
                        autocast_adapter_dtype=True, low_cpu_mem_usage=False,
                    )  # fmt: skip
                else:
                    self._peft.add_adapter(
                        adapter, config.lora_config(), low_cpu_mem_usage=False, autocast_adapter_dtype=True
                    )
                injected = self._adapted_modules(adapter)
                if injected != set(config.modules):
                    raise AdapterRejected(
                        f"PEFT would adapt {len(injected)} layers where the checks expected "
                        f"{len(config.modules)}; refused."
                    )
                # Copied into the fp32 weights PEFT made (low_cpu_mem_usage would round them to the base dtype).
                result = set_peft_model_state_dict(self._peft, tensors, adapter_name=adapter)
                missing = [k for k in result.missing_keys if f".{adapter}." in k]
                if result.unexpected_keys or missing:
                    raise AdapterRejected(
                        f"The adapter's weights do not cover its layers ({(missing or result.unexpected_keys)[0]})."
                    )
            self._peft.eval()  # new LoRA modules start in training mode
            self.engine.loaded.model = self._peft
            self._model_changed()
        except Exception as exc:
            self._undo(adapter, first)
            self._model_changed()
            if isinstance(exc, AdapterError):
                raise
            log.exception("adapter %s failed to load", adapter)
            raise AdapterError(f"The adapter could not be loaded onto the model ({type(exc).__name__}).") from exc

    def _adapted_modules(self, adapter: str) -> set[str]:
        base = self._peft.get_base_model()
        return {path for path, module in base.named_modules() if adapter in getattr(module, "lora_A", {})}

    def _undo(self, adapter: str, first: bool) -> None:
        """Take a half-loaded adapter off the model again, whatever step PEFT failed at."""
        if first:
            if self._peft is not None:
                self._unwrap()
            else:  # the PeftModel constructor itself failed, perhaps after wrapping some layers
                self._base = _strip_lora(self._base)
                self.engine.loaded.model = self._base
            return
        if adapter in self._peft.peft_config:
            self._peft.delete_adapter(adapter)
        from peft.tuners.tuners_utils import BaseTunerLayer

        for layer in self._peft.modules():  # layers PEFT had added before it failed
            if isinstance(layer, BaseTunerLayer) and adapter in getattr(layer, "lora_A", {}):
                layer.delete_adapter(adapter)

    def _unload(self, key: str) -> bool:
        if key not in self._resident:
            return False
        adapter, _ = self._resident.pop(key)
        if not self._resident:
            self._unwrap()
        else:
            if adapter in self._peft.active_adapters:  # avoid PEFT's "active adapter deleted" warning
                self._activate(next(iter(self._resident.values()))[0])
            self._peft.delete_adapter(adapter)
        self._model_changed()
        log.info("adapter removed: %s (%d resident)", key, len(self._resident))
        return True

    def _unwrap(self) -> None:
        """Remove every LoRA layer and put the bare base model back as the live model."""
        peft, self._peft = self._peft, None
        try:
            base = peft.unload()
        except Exception:  # a half-built PeftModel: swap the wrapped layers back by hand
            base = _strip_lora(self._base)
        self._base = base
        self.engine.loaded.model = base


def _strip_lora(model: Any) -> Any:
    """Replace every LoRA-wrapped layer in `model` by the layer it wraps."""
    for path, module in list(model.named_modules()):
        if hasattr(module, "base_layer") and hasattr(module, "lora_A"):
            parent_path, _, child = path.rpartition(".")
            parent = model.get_submodule(parent_path) if parent_path else model
            setattr(parent, child, module.base_layer)
    return model
