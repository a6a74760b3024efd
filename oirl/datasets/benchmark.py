"""Loaders for the LLaMA-2-7B-chat prompting logs on GSM8K, SVAMP and MAWPS.

They follow ``shared/data/README.md`` to the letter: which query file and which log
lines belong together, which prompts were logged on which split, and how SVAMP/MAWPS
placeholders become the text the LLM saw. Every file read is checked against the
manifest's SHA-256, and every count is asserted, so a wrong or partial mirror fails loudly
instead of producing a plausible but wrong table.
"""

from __future__ import annotations

import ast
import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from oirl.datasets.fetch import verify_file

LLM_NAME = "llama-2-7b-chat"
DATASETS = ("gsm8k", "svamp", "mawps")
LOGS = "prompt-oirl/llama_exps/llama2_chat_logs"


@dataclass(frozen=True)
class BenchmarkPrompt:
    index: int
    alias: str
    text: str

    @property
    def held_out(self) -> bool:
        """Prompts 6-15 were written by GPT-4 and logged on test queries only."""
        return self.index >= 6


PROMPTS: tuple[BenchmarkPrompt, ...] = tuple(
    BenchmarkPrompt(i, alias, text)
    for i, (alias, text) in enumerate(
        [
            ("nan", "The answer is:"),
            ("CoT", "Let's think step by step: "),
            ("APE", "Let\u2019s work this out in a step by step way to be sure we have the right answer: "),
            ("Dis", "3 experts are discussing the question with a discussion, trying to solve it step by step, "
                    "and make sure the result is correct: "),
            ("ToT", "Imagine three different experts are answering this question. All experts will write down "
                    "1 step of their thinking, then share it with the group. Then all experts will go on to "
                    "the next step, etc. If any expert realises they're wrong at any point then they leave"),
            ("Decomp", "First, decompose the question into several sub-questions that needs to solve, and then "
                       "solve each question step by step: "),
            ("gpt4_0", "Approaching this logically, the steps to find the answer are: "),
            ("gpt4_1", "Let's break this down into manageable steps to fully understand the problem: "),
            ("gpt4_2", "Consider this as a puzzle, each piece contributing to the final answer. "
                       "Let's place each piece, one by one: "),
            ("gpt4_3", "Three scholars are analyzing this query from various perspectives, working "
                       "collaboratively to build a comprehensive answer. Each contributes a step: "),
            ("gpt4_4", "Let's solve this like a detective would solve a mystery, gathering clues and building "
                       "up to the final solution step by step: "),
            ("gpt4_5", "Imagine we're navigating a maze; each decision brings us closer to the center. "
                       "Let's map our route: "),
            ("gpt4_6", "Envision a round table meeting of expert problem solvers. Each participant suggests a "
                       "step, building towards a consensus answer: "),
            ("gpt4_7", "Like an architect constructing a building, let's design our answer carefully, "
                       "layer by layer: "),
            ("gpt4_8", "As if we are assembling a complex machine, let's put it together piece by piece: "),
            ("gpt4_9", "Three wise philosophers are debating this question, each contributing a different "
                       "aspect of the answer. Let's follow their discourse: "),
        ]
    )
)
TRAINING_PROMPTS = tuple(p for p in PROMPTS if not p.held_out)


@dataclass(frozen=True)
class DatasetSpec:
    n_train: int
    n_test: int


SPECS = {
    "gsm8k": DatasetSpec(7473, 1000),
    "svamp": DatasetSpec(15000, 4690),
    "mawps": DatasetSpec(6000, 1685),
}


class BenchmarkFormatError(ValueError):
    """A benchmark file parsed, but its content does not match the documented layout."""


def _expect(count: int, expected: int, what: str) -> None:
    if count != expected:
        raise BenchmarkFormatError(f"{what}: expected {expected} rows, found {count}")


_LOG_LINE = re.compile(r"^\((\d+), (True|False)\)$")


def read_correctness_log(root: Path, rel: str) -> np.ndarray:
    """Parse ``(i, True|False)`` lines; indices must run 0, 1, 2, ... without gaps."""
    lines = verify_file(root, rel).read_text().splitlines()
    out = np.empty(len(lines), dtype=bool)
    for i, line in enumerate(lines):
        m = _LOG_LINE.match(line.strip())
        if not m or int(m.group(1)) != i:
            raise BenchmarkFormatError(f"{rel} line {i + 1}: expected '({i}, True|False)', got {line!r}")
        out[i] = m.group(2) == "True"
    return out


def _gsm8k_questions(root: Path) -> list[str]:
    base = "grade-school-math/grade_school_math/data"
    train = [json.loads(x)["question"] for x in verify_file(root, f"{base}/train.jsonl").read_text().splitlines()]
    test = [json.loads(x)["question"] for x in verify_file(root, f"{base}/test.jsonl").read_text().splitlines()]
    _expect(len(train), SPECS["gsm8k"].n_train, "gsm8k train.jsonl")
    return train + test[: SPECS["gsm8k"].n_test]


_PLACEHOLDER = re.compile(r"number(\d+)")


def _fill_numbers(question: str, numbers: str) -> str:
    values = numbers.split()

    def sub(m: re.Match) -> str:
        k = int(m.group(1))
        if k >= len(values):
            raise BenchmarkFormatError(f"placeholder number{k} but only {len(values)} numbers in {numbers!r}")
        return values[k]

    return _PLACEHOLDER.sub(sub, question)


def _cv_questions(root: Path, folder: str) -> list[str]:
    questions = []
    for fold in range(5):
        text = verify_file(root, f"SVAMP/data/{folder}/fold{fold}/train.csv").read_text(encoding="utf-8")
        for row in csv.DictReader(io.StringIO(text)):
            questions.append(_fill_numbers(row["Question"], row["Numbers"]))
    return questions


def load_queries(dataset: str, root: Path) -> list[str]:
    """All query texts of a dataset in log-line order (train first, then test)."""
    _check_dataset(dataset)
    if dataset == "gsm8k":
        queries = _gsm8k_questions(root)
    else:
        queries = _cv_questions(root, "cv_svamp_augmented" if dataset == "svamp" else "cv_mawps")
    spec = SPECS[dataset]
    _expect(len(queries), spec.n_train + spec.n_test, f"{dataset} queries")
    return queries


def _check_dataset(dataset: str) -> None:
    if dataset not in SPECS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")


def _prompt_logs(dataset: str, root: Path, prompt: BenchmarkPrompt) -> tuple[np.ndarray | None, np.ndarray]:
    """(train correctness or None, test correctness) for one prompt."""
    spec = SPECS[dataset]
    d = f"{LOGS}/{dataset}"
    if prompt.held_out:
        test = read_correctness_log(root, f"{d}/llama_{dataset}_corr_{prompt.alias}.txt")
        _expect(len(test), spec.n_test, f"{dataset} {prompt.alias} test log")
        return None, test
    if dataset == "gsm8k":
        train = read_correctness_log(root, f"{d}/llama_gsm8k_corr_{prompt.alias}.txt")
        test = read_correctness_log(root, f"{d}/llama_gsm8k_test_corr_{prompt.alias}.txt")
        _expect(len(train), spec.n_train, f"gsm8k {prompt.alias} train log")
        _expect(len(test), spec.n_test, f"gsm8k {prompt.alias} test log")
        return train, test
    both = read_correctness_log(root, f"{d}/llama_{dataset}_corr_{prompt.alias}.txt")
    _expect(len(both), spec.n_train + spec.n_test, f"{dataset} {prompt.alias} log")
    return both[: spec.n_train], both[spec.n_train :]


def load_benchmark(dataset: str, root: Path) -> pd.DataFrame:
    """Outcome rows of one dataset: ``query_index, query, prompt_index, prompt, correct, split``.

    ``query_index`` is the position in the concatenated query list (train then test), so it
    is a stable external key even where SVAMP/MAWPS repeat a question text.
    """
    _check_dataset(dataset)
    root = Path(root)
    queries = load_queries(dataset, root)
    spec = SPECS[dataset]
    frames = []
    for prompt in PROMPTS:
        train, test = _prompt_logs(dataset, root, prompt)
        for split, values, offset in (("train", train, 0), ("test", test, spec.n_train)):
            if values is None:
                continue
            idx = np.arange(offset, offset + len(values))
            frames.append(
                pd.DataFrame(
                    {
                        "query_index": idx,
                        "query": [queries[i] for i in idx],
                        "prompt_index": prompt.index,
                        "prompt": prompt.text,
                        "correct": values,
                        "split": split,
                    }
                )
            )
    df = pd.concat(frames, ignore_index=True)
    _expect(len(df), 6 * spec.n_train + 16 * spec.n_test, f"{dataset} outcomes")
    return df


def load_confidence(dataset: str, root: Path) -> np.ndarray:
    """LLM self-confidence on the test queries, shape (n_test, 16); NaN where no file exists."""
    _check_dataset(dataset)
    n_test = SPECS[dataset].n_test
    out = np.full((n_test, len(PROMPTS)), np.nan)
    for p in PROMPTS:
        rel = f"prompt-oirl/critics/Processed_llama_{dataset}_prompt_{p.index}_confidence.npy"
        path = Path(root) / rel
        if not path.exists():
            continue
        values = np.load(verify_file(root, rel))
        _expect(len(values), n_test, rel)
        out[:, p.index] = values
    return out


_RECORD_SEP = re.compile(r"\n?={20}\n?")


def _read_responses(root: Path, rel: str, expected: int) -> list[str]:
    text = verify_file(root, rel).read_text(encoding="utf-8")
    records = [r for r in _RECORD_SEP.split(text) if r.strip()]
    _expect(len(records), expected, rel)
    out = []
    for i, rec in enumerate(records):
        try:
            idx, response = ast.literal_eval(rec.strip())
        except (ValueError, SyntaxError) as exc:
            raise BenchmarkFormatError(f"{rel} record {i}: not an (index, text) tuple") from exc
        if idx != i:
            raise BenchmarkFormatError(f"{rel} record {i}: index {idx} out of order")
        out.append(response)
    return out


def load_gsm8k_responses(root: Path) -> pd.DataFrame:
    """LLaMA-2 responses with correctness labels: ``query_index, query, prompt_index, response, correct, split``.

    Test queries (1000) have responses under all 16 prompts; training queries only under prompt 0.
    """
    root = Path(root)
    queries = _gsm8k_questions(root)
    spec = SPECS["gsm8k"]
    d = f"{LOGS}/gsm8k"
    frames = []
    for p in PROMPTS:
        _, test_correct = _prompt_logs("gsm8k", root, p)
        name = f"llama_gsm8k_answers_list_{p.alias}.txt" if p.held_out else (
            f"llama_gsm8k_test_answers_list_{p.alias}.txt")
        sources = [("test", name, test_correct, spec.n_train)]
        if p.index == 0:
            train_correct = read_correctness_log(root, f"{d}/llama_gsm8k_corr_nan.txt")
            sources.append(("train", "llama_gsm8k_answers_list_nan.txt", train_correct, 0))
        for split, fname, correct, offset in sources:
            responses = _read_responses(root, f"{d}/{fname}", len(correct))
            idx = np.arange(offset, offset + len(correct))
            frames.append(pd.DataFrame({
                "query_index": idx, "query": [queries[i] for i in idx], "prompt_index": p.index,
                "response": responses, "correct": correct, "split": split,
            }))
    return pd.concat(frames, ignore_index=True)
