"""Hostile and broken adapter uploads are refused before PEFT sees them, in one sentence,
with nothing written and the live model answering exactly as before."""

from __future__ import annotations

import io
import json
import os
import pickle
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest
import torch

from adapters import AdapterRejected
from adapters.spec import TENSOR_PREFIX
from adapters.store import sanitize_name
from adapters.synthetic import lora_config_dict, random_lora_tensors, write_adapter
from adapters.validate import CONFIG_FILE, WEIGHTS_FILE
from engines.base import GenerationParams
from engines.loading import load_model
from tests.conftest import AdapterRig

TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]
GREEDY = GenerationParams(temperature=0, max_new_tokens=8)
SESSION = "session-a"


@pytest.fixture(scope="module")
def manager(tiny_settings, tmp_path_factory) -> AdapterRig:
    # A model of its own: adapters change a model in place, so never the session-wide one.
    return AdapterRig(tiny_settings.replace(data_dir=tmp_path_factory.mktemp("adapter-data")), demo_dir=None)


@pytest.fixture(scope="module")
def base_answer(manager: AdapterRig) -> str:
    return answer(manager)


def answer(manager: AdapterRig, adapter: str | None = None, session: str | None = None) -> str:
    return manager.answer(adapter, session)


def adapter_files(folder: Path, manager: AdapterRig, seed: int = 0, **config_changes) -> list[Path]:
    config = lora_config_dict(TARGETS, r=4, lora_alpha=8)
    config.update(config_changes)
    write_adapter(folder, config, random_lora_tensors(manager.spec, TARGETS, r=4, seed=seed))
    return [folder / CONFIG_FILE, folder / WEIGHTS_FILE]


def make_zip(path: Path, entries: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return path


def refused(manager: AdapterRig, base_answer: str, files: list[Path], match: str) -> str:
    """Upload, expect a one-sentence AdapterRejected, and check nothing changed anywhere."""
    model_before = manager.engine.loaded.model
    with pytest.raises(AdapterRejected, match=match) as caught:
        manager.catalog.upload(files, SESSION, name="attempt")
    message = str(caught.value)
    assert "\n" not in message and message.endswith("."), message
    assert manager.engine.loaded.model is model_before
    assert manager.resident == []
    assert answer(manager) == base_answer
    uploads = manager.store.root / "uploads"
    assert not uploads.exists() or not any(uploads.rglob(CONFIG_FILE))
    assert not any((manager.store.root / ".staging").iterdir())
    return message


class _WritesMarker:
    """Unpickling this creates the marker file: proof that a pickle was (or was not) loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_a_clean_upload_is_accepted_and_changes_the_answer(manager, base_answer, tmp_path):
    info = manager.catalog.upload(adapter_files(tmp_path / "ok", manager), SESSION, name="my adapter!")
    assert info.name == "my-adapter" and info.source == "uploaded" and info.rank == 4
    assert answer(manager, info.key, SESSION) != base_answer
    assert manager.engine.unload(info.key) is True
    manager.catalog.delete_upload(info.key, SESSION)
    assert answer(manager) == base_answer


def test_pickle_payloads_are_refused_and_never_unpickled(manager, base_answer, tmp_path):
    marker = tmp_path / "PWNED"
    payload = pickle.dumps({"base_model.model.x.lora_A.weight": _WritesMarker(marker)})
    config = adapter_files(tmp_path / "cfg", manager)[0]
    (tmp_path / "adapter_model.bin").write_bytes(payload)
    refused(manager, base_answer, [config, tmp_path / "adapter_model.bin"], "pickle")

    inside = make_zip(
        tmp_path / "with-pt.zip",
        [(CONFIG_FILE, config.read_bytes()), (WEIGHTS_FILE, b"x"), ("adapter/evil.pt", payload)],
    )
    refused(manager, base_answer, [inside], "pickle")
    disguised = tmp_path / "disguised" / WEIGHTS_FILE  # a pickle under the safetensors name
    disguised.parent.mkdir()
    disguised.write_bytes(payload)
    refused(manager, base_answer, [config, disguised], "not a valid safetensors file")
    assert not marker.exists()

    store = manager.store.root / "trained" / "pickled"  # a store folder holding only a pickle
    store.mkdir(parents=True)
    (store / CONFIG_FILE).write_bytes(config.read_bytes())
    (store / "adapter_model.bin").write_bytes(payload)
    assert any("pickle" in p.reason for p in manager.catalog.problems(None) if p.name == "pickled")
    assert not marker.exists()
    pickle.loads(payload)  # the payload is live: loading it is exactly what must never happen
    assert marker.exists()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_huge_rank_is_refused_with_flat_memory(manager, base_answer, tmp_path):
    files = adapter_files(tmp_path / "huge", manager, r=20000)
    rss_before = _rss_bytes()
    tracemalloc.start()
    message = refused(manager, base_answer, files, "r=20000")
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert "64" in message
    assert peak < 4 * 2**20, f"Python allocations peaked at {peak / 2**20:.1f} MiB"
    assert _rss_bytes() - rss_before < 8 * 2**20


@pytest.mark.parametrize(
    "targets",
    ["(a+)+$", "(.*a){30}", ["(a+)+$"], "all-linear"],
    ids=["nested-quantifier", "repeated-group", "regex-in-list", "all-linear-string"],
)
def test_regex_targets_are_refused_fast_without_matching(manager, base_answer, tmp_path, targets):
    files = adapter_files(tmp_path / "regex", manager, target_modules=targets)
    started = time.perf_counter()
    refused(manager, base_answer, files, "target_modules")
    assert time.perf_counter() - started < 1.0


def _symlink_entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (0o120777 << 16) & 0xFFFF0000
    return info


@pytest.mark.parametrize(
    "evil",
    [
        "../evil.md",
        "/tmp/evil.md",
        "adapter/../../evil.md",
        "C:/evil.md",
        "a\\..\\evil.md",
        _symlink_entry("README.md"),
    ],
    ids=["dot-dot", "absolute", "nested-dot-dot", "drive", "backslash", "symlink"],
)
def test_zip_slip_entries_are_refused(manager, base_answer, tmp_path, evil):
    config, weights = adapter_files(tmp_path / "src", manager)
    target = make_zip(
        tmp_path / "slip.zip",
        [(CONFIG_FILE, config.read_bytes()), (WEIGHTS_FILE, weights.read_bytes()), (evil, b"/etc/passwd")],
    )
    refused(manager, base_answer, [target], "zip entry")
    assert not (tmp_path.parent / "evil.md").exists() and not list(manager.store.root.rglob("evil*"))


@pytest.mark.filterwarnings("ignore:Duplicate name")
def test_zip_layout_and_size_rules(manager, base_answer, tmp_path):
    config, weights = adapter_files(tmp_path / "src", manager)
    good = [(CONFIG_FILE, config.read_bytes()), (WEIGHTS_FILE, weights.read_bytes())]
    refused(manager, base_answer, [make_zip(tmp_path / "dup.zip", [*good, (CONFIG_FILE, b"{}")])], "twice")
    refused(manager, base_answer, [make_zip(tmp_path / "extra.zip", [*good, ("run.sh", b"rm -rf /")])], "not part")
    mixed = [("a/" + CONFIG_FILE, good[0][1]), ("b/" + WEIGHTS_FILE, good[1][1])]
    refused(manager, base_answer, [make_zip(tmp_path / "mixed.zip", mixed)], "several folders")
    refused(manager, base_answer, [make_zip(tmp_path / "none.zip", [good[0]])], "no adapter_model.safetensors")
    many = [*good, *((f"README{i}.md", b"") for i in range(10))]
    refused(manager, base_answer, [make_zip(tmp_path / "many.zip", many)], "entries")
    bomb = [*good, ("README.md", b"\0" * (300 * 1024))]  # compresses to almost nothing
    refused(manager, base_answer, [make_zip(tmp_path / "bomb.zip", bomb)], "README.md is")
    (tmp_path / "notzip.zip").write_bytes(b"PK\x03\x04 not really")
    refused(manager, base_answer, [tmp_path / "notzip.zip"], "zip")

    info = manager.catalog.upload([make_zip(tmp_path / "folder.zip", [("tone/" + n, d) for n, d in good])], SESSION)
    assert info.name == "tone"
    manager.catalog.delete_upload(info.key, SESSION)


def _tensors_with(manager: AdapterRig, change: str) -> dict[str, torch.Tensor]:
    tensors = random_lora_tensors(manager.spec, TARGETS, r=4, seed=0)
    name = f"{TENSOR_PREFIX}model.layers.0.self_attn.qkv_proj.lora_A.weight"
    if change == "wrong-in-features":
        tensors[name] = torch.zeros(4, 32)
    elif change == "wrong-rank":
        tensors[name] = torch.zeros(8, 64)
    elif change == "missing":
        del tensors[name]
    elif change == "full-weight":
        tensors[f"{TENSOR_PREFIX}lm_head.weight"] = torch.zeros(600, 64)
    elif change == "int-dtype":
        tensors[name] = torch.zeros(4, 64, dtype=torch.int32)
    return tensors


@pytest.mark.parametrize("change", ["wrong-in-features", "wrong-rank", "missing", "full-weight", "int-dtype"])
def test_tensors_that_do_not_fit_the_live_model_are_refused(manager, base_answer, tmp_path, change):
    folder = write_adapter(tmp_path / change, lora_config_dict(TARGETS, r=4), _tensors_with(manager, change))
    refused(manager, base_answer, [folder / CONFIG_FILE, folder / WEIGHTS_FILE], "tensor|Tensor|dtype")


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"auto_mapping": {"base_model_class": "Evil", "parent_library": "os"}}, "auto_mapping"),
        ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
        ({"layer_replication": [[0, 2], [0, 2]]}, "layer_replication"),
        ({"trainable_token_indices": [1, 2]}, "trainable_token_indices"),
        ({"use_dora": True}, "use_dora"),
        ({"target_parameters": ["mlp.experts.weight"]}, "target_parameters"),
        ({"revision": "main"}, "revision"),
        ({"rank_pattern": {"(a+)+$": 64}}, "rank_pattern"),
        ({"megatron_config": {"x": 1}}, "megatron_config"),
        ({"megatron_core": "os"}, "megatron_core"),
        ({"layers_to_transform": [99]}, "layers_to_transform"),
        ({"layers_to_transform": [0], "layers_pattern": "(a+)+"}, "layers_pattern"),
        ({"exec_hook": "import os"}, "unknown field"),
        ({"peft_type": "LOHA"}, "Only LoRA"),
        ({"task_type": "SEQ_CLS"}, "task_type"),
        ({"init_lora_weights": "pissa"}, "init_lora_weights"),
        ({"bias": "all"}, "bias"),
        ({"r": 0}, "positive whole number"),
        ({"r": True}, "positive whole number"),
        ({"r": 4.0}, "positive whole number"),
        ({"lora_alpha": "8"}, "lora_alpha"),
        ({"lora_alpha": 1e300}, "lora_alpha"),
        ({"target_modules": ["q_proj", "v_proj"]}, "no linear layer"),
        ({"target_modules": ["mlp"]}, "not a linear layer"),
        ({"target_modules": ["embed_tokens"]}, "not a linear layer"),
        ({"target_modules": []}, "target_modules"),
    ],
)
def test_dangerous_or_unknown_config_fields_are_refused(manager, base_answer, tmp_path, changes, match):
    refused(manager, base_answer, adapter_files(tmp_path / "cfg", manager, **changes), match)


def test_broken_json_and_wrong_files_are_refused(manager, base_answer, tmp_path):
    config, weights = adapter_files(tmp_path / "src", manager)
    (tmp_path / "bad").mkdir()
    bad = tmp_path / "bad" / CONFIG_FILE
    bad.write_text('{"r": 4, "r": 20000}')
    refused(manager, base_answer, [bad, weights], "twice")
    bad.write_text("{not json")
    refused(manager, base_answer, [bad, weights], "not valid JSON")
    bad.write_text(json.dumps([1, 2]))
    refused(manager, base_answer, [bad, weights], "JSON object")
    refused(manager, base_answer, [config], "no adapter_model.safetensors")
    refused(manager, base_answer, [config, weights, tmp_path / "src" / "train.py"], "not part")
    link = tmp_path / "link" / WEIGHTS_FILE
    link.parent.mkdir()
    link.symlink_to(weights)
    refused(manager, base_answer, [config, link], "regular file")
    header = io.BytesIO((2**40).to_bytes(8, "little") + b"{}")
    (tmp_path / "hdr").mkdir()
    (tmp_path / "hdr" / WEIGHTS_FILE).write_bytes(header.getvalue())
    refused(manager, base_answer, [config, tmp_path / "hdr" / WEIGHTS_FILE], "header")


def test_oversized_weights_are_refused_before_reading(manager, base_answer, tmp_path):
    config, weights = adapter_files(tmp_path / "src", manager)
    small = manager.catalog.max_bytes
    manager.catalog.max_bytes = weights.stat().st_size - 1
    try:
        refused(manager, base_answer, [config, weights], "limit")
        archive = make_zip(
            tmp_path / "big.zip", [(CONFIG_FILE, config.read_bytes()), (WEIGHTS_FILE, weights.read_bytes())]
        )
        refused(manager, base_answer, [archive], "limit")
    finally:
        manager.catalog.max_bytes = small


@pytest.mark.parametrize("pattern", [None, "layers"])
def test_layers_to_transform_selects_the_same_layers_as_peft(manager, base_answer, tmp_path, pattern):
    tensors = {k: v for k, v in random_lora_tensors(manager.spec, TARGETS, r=4, seed=3).items() if ".layers.1." in k}
    config = lora_config_dict(TARGETS, r=4, layers_to_transform=[1], layers_pattern=pattern)
    folder = write_adapter(tmp_path / "layer1", config, tensors)
    info = manager.catalog.upload([folder / CONFIG_FILE, folder / WEIGHTS_FILE], SESSION, name=f"layer1-{pattern}")
    assert answer(manager, info.key, SESSION) != base_answer  # PEFT adapted exactly the checked layers, or refused
    manager.catalog.delete_upload(info.key, SESSION)
    assert manager.resident == [] and answer(manager) == base_answer
    (tmp_path / "both").mkdir()
    config["layers_to_transform"] = [0]  # the weights are for layer 1: a mismatch, refused
    write_adapter(tmp_path / "both", config, tensors)
    refused(manager, base_answer, [tmp_path / "both" / CONFIG_FILE, tmp_path / "both" / WEIGHTS_FILE], "tensor")


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("my adapter!", "my-adapter"), ("../../etc/passwd", "etc-passwd"), (".hidden", "hidden"), ("Ωmega", "mega")],
)
def test_names_are_sanitized(raw, clean):
    assert sanitize_name(raw) == clean


@pytest.mark.parametrize("raw", ["", "...", "///", "한국어"])
def test_names_without_usable_characters_are_refused(raw):
    with pytest.raises(AdapterRejected, match="no usable characters"):
        sanitize_name(raw)


def test_an_adapter_saved_by_peft_round_trips_exactly(manager, base_answer, tmp_path, tiny_settings):
    from peft import LoraConfig, get_peft_model

    trainee = load_model(tiny_settings.replace(data_dir=tmp_path / "other")).model  # a separate copy
    config = LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS, task_type="CAUSAL_LM")
    peft_model = get_peft_model(trainee, config)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # trained-looking: B is no longer zero
                param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(7)) * 0.3)
    peft_model.save_pretrained(tmp_path / "saved")
    ids = torch.tensor([manager.engine.tokenizer("Part number KX-4471")["input_ids"]])
    with torch.inference_mode():
        expected = peft_model.eval()(input_ids=ids).logits
    files = [(n, (tmp_path / "saved" / n).read_bytes()) for n in (CONFIG_FILE, WEIGHTS_FILE, "README.md")]
    archive = make_zip(tmp_path / "peft.zip", [("peft-saved/" + n, d) for n, d in files])
    info = manager.catalog.upload([archive], SESSION)
    ours = manager.logits(info.key, SESSION)
    base = manager.logits(None)
    assert torch.allclose(ours, expected, atol=1e-6) and not torch.allclose(ours, base, atol=1e-3)
    manager.catalog.delete_upload(info.key, SESSION)
    assert answer(manager) == base_answer


def test_unnamed_uploads_get_numbered_names_and_a_chosen_name_is_never_replaced(manager, tmp_path):
    """Two uploads with no name (loose files: the app names them "adapter") both succeed, as adapter and
    adapter-2; uploading again under a name the person chose is refused rather than replacing it."""
    session = "numbering-session"
    first = manager.catalog.upload(adapter_files(tmp_path / "a", manager, seed=1), session)
    second = manager.catalog.upload(adapter_files(tmp_path / "b", manager, seed=2), session)
    assert (first.name, second.name) == ("adapter", "adapter-2")
    manager.catalog.upload(adapter_files(tmp_path / "c", manager, seed=3), session, name="mine")
    with pytest.raises(AdapterRejected, match="already have an adapter named 'mine'"):
        manager.catalog.upload(adapter_files(tmp_path / "d", manager, seed=4), session, name="mine")
    for name in ("adapter", "adapter-2", "mine"):
        manager.catalog.delete_upload(name, session)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t * 50, r"makes \d+(\.\d+)?x the change of the layer"),  # a plausible adapter scaled by 50
        (lambda t: t * 1e30, "makes an infinite change|NaN or infinite"),
        (lambda t: torch.where(torch.arange(t.numel()).reshape(t.shape) == 3, float("nan"), t), "NaN or infinite"),
    ],
)
def test_weights_out_of_proportion_or_not_finite_are_refused_at_upload_naming_the_tensor(
    tiny_settings, tmp_path, change, match
):
    """Checked when uploaded, not at first use after "Added": finite values, and no layer changed by more than
    adapter_max_update (1.0) times its own size. A plausible adapter (updates ~0.02x) is accepted."""
    rig = AdapterRig(tiny_settings.replace(data_dir=tmp_path / "data", adapter_max_update=1.0))
    plausible = random_lora_tensors(rig.spec, TARGETS, r=4, seed=7, scale=0.01)
    config = lora_config_dict(TARGETS, r=4, lora_alpha=8)
    write_adapter(tmp_path / "ok", config, plausible)
    assert rig.catalog.upload([tmp_path / "ok" / CONFIG_FILE, tmp_path / "ok" / WEIGHTS_FILE], SESSION, name="ok")
    write_adapter(tmp_path / "bad", config, {k: change(v) for k, v in plausible.items()})
    with pytest.raises(AdapterRejected, match=match) as refused:
        rig.catalog.upload([tmp_path / "bad" / CONFIG_FILE, tmp_path / "bad" / WEIGHTS_FILE], SESSION, name="bad")
    assert "base_model.model.model.layers." in str(refused.value)  # the tensor is named
    assert [a.name for a in rig.catalog.list_adapters(SESSION)] == ["ok"]  # nothing stored


def test_uploads_nobody_used_for_upload_ttl_hours_are_deleted_and_unloaded(tiny_settings, tmp_path):
    """A closed tab's uploads were kept forever (21 orphaned folders, 270 MB, in one test): an upload neither
    made nor used for upload_ttl_hours is deleted and taken off the model; one in use stays."""
    import os
    import time

    rig = AdapterRig(tiny_settings.replace(data_dir=tmp_path / "data", upload_ttl_hours=1.0))
    old = rig.catalog.upload(adapter_files(tmp_path / "a", rig, seed=1), "tab-closed", name="old")
    kept = rig.catalog.upload(adapter_files(tmp_path / "b", rig, seed=2), "tab-open", name="kept")
    rig.answer(old.key, "tab-closed")  # loaded on the model once
    assert old.key in rig.resident
    two_hours_ago = time.time() - 7200
    for info in (old, kept):
        os.utime(info.path, (two_hours_ago, two_hours_ago))
        marks = rig.store.root / ".last_used" / info.owner / info.name
        if marks.exists():
            os.utime(marks, (two_hours_ago, two_hours_ago))
    rig.catalog.resolve("kept", "tab-open")  # used just now
    assert rig.catalog.expire_abandoned(now=time.time()) == [old.key]
    assert not old.path.exists() and old.key not in rig.resident
    assert [a.name for a in rig.catalog.list_adapters("tab-open")] == ["kept"]
    assert kept.path.exists()


def test_a_signed_in_persons_uploads_outlive_a_sessions_and_count_against_their_quota(tiny_settings, tmp_path):
    """Expiry is by the kind of owner: a browser session's uploads after upload_ttl_hours unused, a signed-in
    person's after user_upload_ttl_days; and max_adapters_per_user bounds what one person keeps."""
    import os
    import time

    from core.identity import Identity

    settings = tiny_settings.replace(
        data_dir=tmp_path / "data", upload_ttl_hours=1.0, user_upload_ttl_days=30.0, max_adapters_per_user=2
    )
    rig = AdapterRig(settings)
    alice, tab = Identity("tab-1", "alice").owner, Identity("tab-2").owner
    mine = rig.catalog.upload(adapter_files(tmp_path / "a", rig, seed=1), alice, name="mine")
    theirs = rig.catalog.upload(adapter_files(tmp_path / "b", rig, seed=2), tab, name="theirs")
    two_days_ago = time.time() - 2 * 86400
    for info in (mine, theirs):
        os.utime(info.path, (two_days_ago, two_days_ago))
    assert rig.catalog.expire_abandoned(now=time.time()) == [theirs.key]
    assert rig.catalog.expire_abandoned(now=time.time() + 27 * 86400) == []  # 29 days unused
    assert rig.catalog.expire_abandoned(now=time.time() + 29 * 86400) == [mine.key]  # 31 days

    rig.catalog.upload(adapter_files(tmp_path / "c", rig, seed=3), alice, name="one")
    rig.catalog.upload(adapter_files(tmp_path / "d", rig, seed=4), alice, name="two")
    with pytest.raises(AdapterRejected, match="You have 2 uploaded adapters, the most one person may keep"):
        rig.catalog.upload(adapter_files(tmp_path / "e", rig, seed=5), alice, name="three")
