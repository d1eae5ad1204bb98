"""The OpenAI-compatible engine: the app as a client of a model server (vLLM with `--enable-lora`) for scale.

`OpenAIEngine` is an `engines.base.Engine` that holds a tokenizer and the model's config, no model: it sends the
prompt the answer path built (token ids, as for the other engines) to `{url}/v1/completions` with `stream: true`,
reading the server's text deltas back. The server batches every user's requests itself.

Adapters are asked for by name (the `model` field), as vLLM serves LoRA modules. An adapter the server does
not list yet is loaded through vLLM's runtime endpoint (`/v1/load_lora_adapter`, which needs
`VLLM_ALLOW_RUNTIME_LORA_UPDATING=True` on the server, and the adapter folder visible to it at the same path);
a server that cannot load it gets one clear sentence instead of an answer.

What a server cannot run: the answer path's own logits processors (the in-answer repetition guard and the
copy bias). Greedy decoding and the length budget still apply; a server's own repetition penalty is
turned off, so greedy answers match the in-process llama.cpp engine's over the same GGUF.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from adapters.spec import AdapterHandle
from core.errors import AdapterUnusable, UserInputError
from engines.base import GenerationParams
from engines.loading import LoadedModel

log = logging.getLogger(__name__)


class EngineUnreachable(UserInputError):
    """The model server did not answer; the message is one sentence."""


class OpenAIEngine:
    """Generation on an OpenAI-compatible server; see the module docstring."""

    name = "openai"

    def __init__(
        self,
        loaded: LoadedModel,
        url: str,
        model: str | None = None,
        api_key: str | None = None,
        timeout: float = 120.0,
    ):
        self.loaded = loaded
        self.url = url.rstrip("/").removesuffix("/v1")
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=self.url, headers=headers, timeout=httpx.Timeout(timeout, connect=5.0))
        self._served_lock = threading.Lock()
        self._served: set[str] = set()
        self.model_name = model or self._first_model()

    @property
    def tokenizer(self) -> Any:
        return self.loaded.tokenizer

    @property
    def context_window(self) -> int:
        return self.loaded.context_window

    @property
    def spec(self) -> Any:
        """The base model's linear layers and names (`adapters.spec.ModelSpec`), read from its config at load."""
        return self.loaded.spec

    @property
    def resident(self) -> list[str]:
        """The adapters this client has seen the server serve."""
        with self._served_lock:
            return sorted(self._served)

    def unload(self, key: str) -> bool:
        """Nothing to free in this process: the server holds its adapters, by name (it keeps serving one whose
        files were deleted here until it restarts)."""
        return False

    def describe(self) -> str:
        return f"OpenAI-compatible server at {self.url} (model {self.model_name})"

    def close(self) -> None:
        self.http.close()

    # -- what the server serves -----------------------------------------------------------------------
    def served_models(self) -> list[str]:
        """The model ids the server lists (the base model and the adapters it has loaded)."""
        try:
            response = self.http.get("/v1/models")
            response.raise_for_status()
            return [str(item["id"]) for item in response.json().get("data", [])]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise EngineUnreachable(f"The model server at {self.url} did not list its models ({_why(exc)}).") from None

    def _first_model(self) -> str:
        models = self.served_models()
        if not models:
            raise EngineUnreachable(f"The model server at {self.url} serves no model.")
        return models[0]

    def adapter_name(self, adapter: AdapterHandle) -> str:
        """The name the server serves `adapter` under, loading it at runtime first if the server allows it."""
        name = adapter.name
        with self._served_lock:
            if name in self._served:
                return name
            if name in self.served_models():
                self._served.add(name)
                return name
            try:
                response = self.http.post(
                    "/v1/load_lora_adapter", json={"lora_name": name, "lora_path": str(adapter.folder.resolve())}
                )
            except httpx.HTTPError as exc:
                raise EngineUnreachable(f"The model server at {self.url} did not answer ({_why(exc)}).") from None
            if response.status_code in (404, 405):
                raise AdapterUnusable(
                    f"The model server does not serve the adapter {name!r} and cannot load adapters while running; "
                    "ask the operator to start it with this adapter (vLLM: --lora-modules)."
                )
            if response.status_code >= 400:
                raise AdapterUnusable(f"The model server refused to load the adapter {name!r} ({_detail(response)}).")
            self._served.add(name)
            log.info("adapter %s loaded on the model server", name)
            return name

    # -- generation -----------------------------------------------------------------------------------
    def stream(
        self,
        prompt_ids: Sequence[int],
        params: GenerationParams,
        stop: threading.Event | None = None,
        adapter: AdapterHandle | None = None,
        copy_from: Sequence[Sequence[int]] = (),
    ) -> Iterator[str]:
        return self._stream(list(prompt_ids), params, stop or threading.Event(), adapter)

    def _stream(
        self, prompt_ids: list[int], params: GenerationParams, stop: threading.Event, adapter: AdapterHandle | None
    ) -> Iterator[str]:
        model = self.adapter_name(adapter) if adapter is not None else self.model_name
        body: dict[str, Any] = {
            "model": model,
            "prompt": self.tokenizer.decode(prompt_ids, skip_special_tokens=False),
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p if params.temperature else 1.0,
            "stream": True,
            "stop": [self.tokenizer.decode([i]) for i in self.loaded.stop_token_ids],
            # a server's own repetition penalty off (vLLM and llama.cpp name it differently)
            "repetition_penalty": 1.0,
            "repeat_penalty": 1.0,
        }
        started = time.perf_counter()
        try:
            with self.http.stream("POST", "/v1/completions", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise EngineUnreachable(f"The model server refused the request ({_detail(response)}).")
                for line in response.iter_lines():
                    if stop.is_set():
                        break
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    try:
                        choice = json.loads(data)["choices"][0]
                    except (ValueError, KeyError, IndexError, TypeError):
                        continue
                    text = choice.get("text") or ""
                    if text:
                        yield text
        except httpx.HTTPError as exc:
            raise EngineUnreachable(f"The model server at {self.url} stopped answering ({_why(exc)}).") from None
        log.debug("server answer in %.2f s", time.perf_counter() - started)


def _why(exc: Exception) -> str:
    return type(exc).__name__ if not str(exc) else str(exc).splitlines()[0][:120]


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json()
        detail = detail.get("error", detail) if isinstance(detail, dict) else detail
        detail = detail.get("message", detail) if isinstance(detail, dict) else detail
    except ValueError:
        detail = response.text
    return f"HTTP {response.status_code}: {str(detail)[:160]}"
