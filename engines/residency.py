"""LoRA adapters resident on the one base model: loading, switching, evicting. Owned by the engine.

The base model loads once. The first adapter wraps it in a PeftModel; later ones are added beside it
(PEFT `add_adapter`), and switching points every LoRA layer at another adapter (~0.6 ms), never
reloading the base. At most `max_resident` stay loaded (the least recently used is evicted), and
removing the last one unwraps the PeftModel, so the bare base model is back exactly as it was.

Every method runs under the engine's lock (the engine calls them; nothing else does). The files come
from an `AdapterHandle` the catalog already checked against the model; the tensors actually loaded
are checked once more here (names, shapes, float dtype, finite values) before PEFT sees them, so a
file swapped after the catalog looked cannot get through.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from typing import Any

import torch

from adapters.spec import AdapterHandle, LoraSpec
from adapters.tensors import check_tensors, load_weights
from core.errors import AdapterUnusable
from engines.loading import LoadedModel

log = logging.getLogger(__name__)

_UNKNOWN = object()


def lora_config(lora: LoraSpec) -> Any:
    """The peft.LoraConfig for serving, built from checked values only.

    It lists the selected layers by full path, so PEFT's own matching (suffixes, layer indexes) cannot
    pick anything else; dropout is off, as generation never trains."""
    from peft import LoraConfig

    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.lora_alpha,
        lora_dropout=0.0,
        use_rslora=lora.use_rslora,
        target_modules=list(lora.modules),
        bias="none",
        init_lora_weights=False,  # every weight is loaded (completeness is checked), so skip the init
        inference_mode=True,
        task_type="CAUSAL_LM",
    )


class LoraResidency:
    """The adapters loaded on `loaded.model`; call only under the engine's lock."""

    def __init__(self, loaded: LoadedModel, max_resident: int = 4):
        self.loaded = loaded
        self.max_resident = max(1, int(max_resident))
        self.base: Any = loaded.model
        self.spec = loaded.spec  # read once, when the model loaded
        self._peft: Any = None  # the PeftModel wrapping `base` while any adapter is resident
        # key -> (PEFT adapter name, handle it was loaded from), least recently used first
        self._resident: OrderedDict[str, tuple[str, AdapterHandle]] = OrderedDict()
        self._layers: list[Any] = []
        self._fast = False
        self._active: str | object | None = _UNKNOWN

    @property
    def resident(self) -> list[str]:
        """Keys of the loaded adapters, least recently used first."""
        return list(self._resident)

    def adapter_name(self, key: str) -> str | None:
        """PEFT's name for a resident adapter (for tests and diagnostics)."""
        entry = self._resident.get(key)
        return entry[0] if entry else None

    def activate(self, handle: AdapterHandle | None) -> None:
        """Make the model run `handle`'s adapter (loading it if needed), or the bare base for None.

        Raises AdapterUnusable (one sentence) when the adapter cannot be loaded; the model is then as
        it was before the call."""
        if handle is None:
            if self._peft is not None:
                self._switch(None)
            return
        self._switch(self._ensure_loaded(handle))

    def unload(self, key: str) -> bool:
        """Delete an adapter from the model, freeing its memory. Returns whether it was resident."""
        if key not in self._resident:
            return False
        adapter, _ = self._resident.pop(key)
        if not self._resident:
            self._unwrap()
        else:
            if adapter in self._peft.active_adapters:  # avoid PEFT's "active adapter deleted" warning
                self._switch(next(iter(self._resident.values()))[0])
            self._peft.delete_adapter(adapter)
        self._model_changed()
        log.info("adapter removed: %s (%d resident)", key, len(self._resident))
        return True

    # -- switching --------------------------------------------------------------------------------
    def _switch(self, adapter: str | None) -> None:
        """Point every LoRA layer at `adapter`, or disable them all for None (the bare base).

        PEFT's own `set_adapter` / `disable_adapter` walk every module of the model and reset
        requires_grad on every adapter weight (~20 ms on SmolLM2); the layers are known and the
        weights are frozen already, so only each layer's two switches are set. If a PEFT version
        lacks them, its public methods are used instead."""
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

    # -- loading ------------------------------------------------------------------------------------
    def _ensure_loaded(self, handle: AdapterHandle) -> str:
        if handle.key in self._resident:
            adapter, loaded_from = self._resident[handle.key]
            if loaded_from.version == handle.version:
                self._resident.move_to_end(handle.key)
                return adapter
            self.unload(handle.key)  # rewritten on disk (e.g. retrained): load the new files
        tensors = load_weights(handle)
        check_tensors(tensors, handle.lora, self.spec)
        while len(self._resident) >= self.max_resident:
            self.unload(next(iter(self._resident)))
        # fp32 LoRA weights on any base dtype, as PEFT's own loader keeps them (autocast_adapter_dtype):
        # bf16 LoRA weights moved SmolLM2's logits by up to 0.8 from PeftModel.from_pretrained's.
        with torch.inference_mode(False):
            tensors = {k: v.to(device=self.loaded.device, dtype=torch.float32) for k, v in tensors.items()}
        adapter = "a" + hashlib.sha256(handle.key.encode()).hexdigest()[:16]
        self._inject(adapter, handle.lora, tensors)
        self._resident[handle.key] = (adapter, handle)
        log.info("adapter loaded: %s (%d resident)", handle.key, len(self._resident))
        return adapter

    def _inject(self, adapter: str, lora: LoraSpec, tensors: dict[str, torch.Tensor]) -> None:
        """Add the adapter's LoRA layers and weights; on any failure undo them and raise AdapterUnusable."""
        from peft import PeftModelForCausalLM, set_peft_model_state_dict

        first = self._peft is None
        try:
            with torch.inference_mode(False), torch.no_grad():
                if first:
                    self._peft = PeftModelForCausalLM(
                        self.base,
                        lora_config(lora),
                        adapter_name=adapter,
                        autocast_adapter_dtype=True,
                        low_cpu_mem_usage=False,
                    )
                else:
                    self._peft.add_adapter(
                        adapter, lora_config(lora), low_cpu_mem_usage=False, autocast_adapter_dtype=True
                    )
                injected = self._adapted_modules(adapter)
                if injected != set(lora.modules):
                    raise AdapterUnusable(
                        f"PEFT would adapt {len(injected)} layers where the checks expected {len(lora.modules)}; "
                        "refused."
                    )
                # Copied into the fp32 weights PEFT made (low_cpu_mem_usage would round them to the base dtype).
                result = set_peft_model_state_dict(self._peft, tensors, adapter_name=adapter)
                missing = [k for k in result.missing_keys if f".{adapter}." in k]
                if result.unexpected_keys or missing:
                    raise AdapterUnusable(
                        f"The adapter's weights do not cover its layers ({(missing or result.unexpected_keys)[0]})."
                    )
            self._peft.eval()  # new LoRA modules start in training mode
            self.loaded.model = self._peft
            self._model_changed()
        except Exception as exc:  # protects the model: any failure mid-injection rolls it back to what it was
            self._undo(adapter, first)
            self._model_changed()
            if isinstance(exc, AdapterUnusable):
                raise
            log.exception("adapter %s failed to load", adapter)
            raise AdapterUnusable(f"The adapter could not be loaded onto the model ({type(exc).__name__}).") from exc

    def _adapted_modules(self, adapter: str) -> set[str]:
        base = self._peft.get_base_model()
        return {path for path, module in base.named_modules() if adapter in getattr(module, "lora_A", {})}

    def _undo(self, adapter: str, first: bool) -> None:
        """Take a half-loaded adapter off the model again, whatever step PEFT failed at."""
        if first:
            if self._peft is not None:
                self._unwrap()
            else:  # the PeftModel constructor itself failed, perhaps after wrapping some layers
                self.base = _strip_lora(self.base)
                self.loaded.model = self.base
            return
        if adapter in self._peft.peft_config:
            self._peft.delete_adapter(adapter)
        from peft.tuners.tuners_utils import BaseTunerLayer

        for layer in self._peft.modules():  # layers PEFT had added before it failed
            if isinstance(layer, BaseTunerLayer) and adapter in getattr(layer, "lora_A", {}):
                layer.delete_adapter(adapter)

    def _unwrap(self) -> None:
        """Remove every LoRA layer and put the bare base model back as the live model."""
        peft, self._peft = self._peft, None
        try:
            base = peft.unload()
        except Exception:  # a half-built PeftModel: swap the wrapped layers back by hand
            base = _strip_lora(self.base)
        self.base = base
        self.loaded.model = base


def _strip_lora(model: Any) -> Any:
    """Replace every LoRA-wrapped layer in `model` by the layer it wraps."""
    for path, module in list(model.named_modules()):
        if hasattr(module, "base_layer") and hasattr(module, "lora_A"):
            parent_path, _, child = path.rpartition(".")
            parent = model.get_submodule(parent_path) if parent_path else model
            setattr(parent, child, module.base_layer)
    return model
