"""The adapter catalog: which adapters there are, who may see and use them, uploads, deletes, publishing.

It implements `adapters.spec.AdapterResolver` for the answer path: `resolve_handle(name, owner)` returns a
checked `AdapterHandle` the engine loads. It never touches the model; when it deletes or replaces
an adapter's files it asks the engine to unload it (`unload`). No torch here.

Privacy: an upload is visible to, and usable by, only the person who uploaded it (`owner`: a
`core.identity.Identity.owner`, a signed-in user or a browser session), unless the operator sets
`publish_uploads` or calls `publish`. An upload's key holds a digest of its owner, never a name.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence

from adapters.errors import AdapterError, AdapterNotAvailable, AdapterRejected
from adapters.registry import AdapterInfo, AdapterRegistry, SkippedAdapter, visible_to
from adapters.spec import AdapterHandle, ModelSpec
from adapters.store import SOURCES, UPLOADED, AdapterStore, sanitize_name
from adapters.upload import stage_upload
from adapters.validate import CARD_FILE, WEIGHTS_FILE, check_adapter_folder, parse_json_object, read_small_file
from core.errors import UserInputError
from core.identity import owner_id
from core.settings import UploadSettings

log = logging.getLogger(__name__)

Unload = Callable[[str], bool]
"""Asks the engine to take an adapter (by key) off the model; returns whether it was loaded."""


CheckWeights = Callable[[AdapterHandle, float], None]
"""Checks an adapter's numbers against the live model (`adapters.tensors.weights_checker`); raises a
`core.errors.UserInputError` naming the tensor."""


def _no_unload(key: str) -> bool:
    return False


class AdapterCatalog:
    """Lists, validates, stores and resolves adapters for the live model described by `spec`."""

    def __init__(
        self,
        spec: ModelSpec,
        store: AdapterStore,
        limits: UploadSettings,
        publish_uploads: bool = False,
        unload: Unload = _no_unload,
        check_weights: CheckWeights | None = None,
    ):
        """`store`: the adapter folders (the app's one store). `limits`: the upload group of the settings (rank,
        size, update size, how many per person, how long unused uploads stay). `publish_uploads`: one session's
        uploads are visible to all (the operator's choice). `unload`: the engine's `unload`. `check_weights`: the
        upload check of an adapter's numbers (`adapters.tensors.weights_checker`), run before it is stored."""
        self.limits, self.publish_uploads = limits, publish_uploads
        self.max_bytes = int(limits.adapter_max_mb * 2**20)
        self.store = store
        self.registry = AdapterRegistry(self.store, spec, limits.adapter_max_rank, self.max_bytes)
        self.unload = unload
        self.check_weights = check_weights
        self._last_sweep = 0.0

    @property
    def spec(self) -> ModelSpec:
        return self.registry.spec

    # -- listing and access ------------------------------------------------------------------
    def expire_abandoned(self, now: float | None = None) -> list[str]:
        """Delete uploads nobody made or used for `upload_ttl_hours` (a browser session's: a closed tab's
        uploads, otherwise kept forever) or `user_upload_ttl_days` (a signed-in person's), taking them off
        the model first; return their keys. Runs at most once a minute on its own (from listing and
        uploading); `now` forces a sweep at that time."""
        moment = time.time() if now is None else now
        if now is None and moment - self._last_sweep < 60:
            return []
        self._last_sweep = moment
        gone = []
        for entry in self.store.abandoned_uploads(self.limits.upload_ttl_s, moment):
            self.unload(entry.key)
            try:
                self.store.delete(entry)
            except OSError:
                log.warning("could not delete the abandoned upload %s", entry.key)
                continue
            gone.append(entry.key)
            log.info("abandoned upload deleted: %s", entry.key)
        return gone

    def list_adapters(self, owner: str | None) -> list[AdapterInfo]:
        """The adapters this person may use, own uploads first, then trained, published, demo."""
        self.expire_abandoned()
        usable, _ = self.registry.scan()
        mine = [i for i in usable if self._visible(i, owner)]
        return sorted(mine, key=lambda i: (SOURCES.index(i.source), i.name, i.key))

    def problems(self, owner: str | None) -> list[SkippedAdapter]:
        """Adapter folders this person could see that are skipped, each with its one-sentence reason."""
        _, skipped = self.registry.scan()
        return [s for s in skipped if self._visible(s, owner)]

    def resolve(self, name: str, owner: str | None) -> AdapterInfo:
        """The adapter `name` (a key, the label the page shows, or a bare name) as seen by `owner`.

        A bare name shared by several adapters resolves to the owner's own upload first, then
        trained, published and demo ones. Raises AdapterNotAvailable (one sentence) for an unknown
        name, a skipped folder, or another person's upload, without saying which.
        """
        if not isinstance(name, str) or not name.strip():
            raise AdapterNotAvailable("Choose an adapter first.")
        usable, skipped = self.registry.scan()
        visible = [i for i in usable if self._visible(i, owner)]
        chosen = next((i for i in visible if name in (i.key, i.label)), None)  # as the page lists it
        if chosen is None:
            named = sorted((i for i in visible if i.name == name), key=lambda i: SOURCES.index(i.source))
            chosen = named[0] if named else None
        if chosen is not None:
            if chosen.source == UPLOADED:
                entry = self.store.entry(chosen.key)
                if entry is not None:
                    self.store.touch(entry)
            return chosen
        for bad in skipped:
            if self._visible(bad, owner) and name in (bad.key, bad.name):
                raise AdapterNotAvailable(f"Adapter {bad.name!r} cannot be used: {bad.reason.rstrip('.')}.")
        raise AdapterNotAvailable(f"No adapter named {name[:80]!r} is available to you.")

    def resolve_handle(self, name: str, owner: str | None) -> AdapterHandle:
        """`adapters.spec.AdapterResolver`: what the engine loads for `name` as `owner` may use it."""
        return self.resolve(name, owner).handle

    def _visible(self, item: AdapterInfo | SkippedAdapter, owner: str | None) -> bool:
        return visible_to(item, owner, self.publish_uploads)

    # -- uploads, publishing, deleting ---------------------------------------------------------
    def upload(self, files: Sequence[str | os.PathLike], owner: str, name: str | None = None) -> AdapterInfo:
        """Check an uploaded adapter and store it privately for `owner`; return its info.

        `files`: the adapter's files (adapter_config.json + adapter_model.safetensors, optionally
        adapter_card.json / README.md) or one .zip holding them. Raises AdapterRejected with one
        sentence on any problem; then nothing is written. An upload never touches the model: the
        engine loads it when it is first used.
        """
        if not isinstance(owner, str) or not owner:
            raise AdapterRejected("Uploading an adapter needs a browser session; reload the page and try again.")
        self.expire_abandoned()
        with self.store.staging() as staging:
            suggested = stage_upload(files, staging, self.max_bytes)
            chosen = bool(name and str(name).strip())
            final = sanitize_name(name if chosen else (suggested or "adapter"))
            checked = check_adapter_folder(staging, self.spec, self.limits.adapter_max_rank, self.max_bytes)
            if self.check_weights is not None:  # the numbers, now: not at first use, after "Added"
                staged = AdapterHandle(
                    f"{UPLOADED}/staging",
                    final,
                    UPLOADED,
                    staging,
                    staging / WEIGHTS_FILE,
                    checked.config.lora,
                    self.max_bytes,
                )
                try:
                    self.check_weights(staged, self.limits.adapter_max_update)
                except UserInputError as exc:
                    raise AdapterRejected(str(exc)) from None
            if (staging / CARD_FILE).exists():
                parse_json_object(read_small_file(staging / CARD_FILE), CARD_FILE)
            entry = self.store.commit_upload(
                staging, owner, final, numbered=not chosen, limit=self.limits.max_adapters_per_user
            )
        found = self.registry.lookup(entry)
        if not isinstance(found, AdapterInfo):  # only if the folder changed under us
            raise AdapterRejected(f"The uploaded adapter could not be stored: {found.reason.rstrip('.')}.")
        log.info("adapter uploaded: %s", found.key)
        return found

    def delete_upload(self, name: str, owner: str) -> AdapterInfo:
        """Delete one of `owner`'s own uploads (the engine unloads it first); return what was deleted.

        Raises AdapterNotAvailable when `owner` does not own an upload of that name.
        """
        info = self.resolve(name, owner)
        if info.source != UPLOADED or not owner or info.owner != owner_id(owner):
            raise AdapterNotAvailable(f"You can delete only adapters you uploaded; {info.name!r} is not one.")
        self.unload(info.key)
        entry = self.store.entry(info.key)
        if entry is not None:
            self.store.delete(entry)
        return info

    def publish(self, name: str, owner: str | None = None) -> AdapterInfo:
        """Operator: make an upload visible to everyone by moving it to `published/`.

        `name` is an upload's key, or its bare name among `owner`'s uploads (or among all uploads
        when `owner` is None and the name is unique). Raises AdapterNotAvailable or AdapterRejected
        (one sentence) when there is no such upload or the name is taken.
        """
        usable, _ = self.registry.scan()
        uploads = [i for i in usable if i.source == UPLOADED]
        if owner is not None:
            uploads = [i for i in uploads if i.owner == owner_id(owner)]
        matches = [i for i in uploads if name in (i.key, i.name)]
        if len(matches) != 1:
            count = "No" if not matches else "More than one"
            raise AdapterNotAvailable(f"{count} uploaded adapter is named {name[:80]!r}; give its key to publish it.")
        self.unload(matches[0].key)
        entry = self.store.entry(matches[0].key)
        if entry is None:
            raise AdapterNotAvailable(f"The upload {name[:80]!r} is gone.")
        published = self.store.publish(entry)
        found = self.registry.lookup(published)
        if not isinstance(found, AdapterInfo):
            raise AdapterError(f"The published adapter is not usable: {found.reason.rstrip('.')}.")
        return found
