"""How hard a query is, from 0 (a small model answers it well) to 1 (it needs the large tier).

Cheap features (length, reasoning, code, maths, multi-step and domain markers, small-talk
markers) are standardised and joined to the query's sentence embedding
(`core.embeddings`, all-MiniLM-L6-v2); a logistic regression over both gives the
score. `python manage.py train_router [--data CSV]` fits it on a labelled set (`query,tier`,
tier small or large) and writes `gateway/data/router_weights.json`; retraining from reviewed
traffic is the same command on another CSV. Training is full-batch gradient descent from
zero weights, so the same data gives the same weights.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.embeddings import embed
from core.logistic_regression import fit_logistic_regression

WEIGHTS_PATH = Path(__file__).resolve().parent / "data" / "router_weights.json"
DEFAULT_DATA_PATH = Path(__file__).resolve().parent.parent / "bench" / "data" / "routing_labelled.csv"
FORMAT_VERSION = 1
MAX_QUERY_CHARACTERS = 2000  # the embedding sees 256 tokens anyway; features need no more
CONTEXT_CHARACTERS = 200  # of the previous user turn, so that "now do the same for X" keeps its subject
# Standardised features are scaled down so that they and the unit-norm embedding train at
# one learning rate (gradient descent diverges when feature variance dwarfs the embedding's).
FEATURE_SCALE = 0.25
LEARNING_RATE = 2.0
ITERATIONS = 4000
L2 = 1e-3


def _words(*words: str) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(words) + r")\b", re.IGNORECASE)


_REASONING = _words(
    "why",
    "explain",
    "analy[sz]e",
    "analysis",
    "compare",
    "comparison",
    "evaluate",
    "assess",
    "justify",
    "critique",
    "reason(?:ing)?",
    "trade-?offs?",
    "pros and cons",
    "implications?",
    "recommend(?:ation)?",
    "diagnos(?:e|is)",
    "interpret",
    "weigh",
    "consequences?",
    "strategy",
    "design",
)
_CODE = re.compile(
    r"```|\bdef |\bclass |=>|\w+\(\)|\{|\}|;\s|\b(?:refactor|implement|algorithm|race condition|concurren\w*|"
    r"thread-?safe|async|await|segfault|compiler|parser|regex|schema|migration|kubernetes|docker|"
    r"microservices?|api|sql|query|index(?:es)?|goroutines?|rust|c\+\+|java|typescript|python|golang|"
    r"memory|latency|deadlock|debug)\b",
    re.IGNORECASE,
)
_MATH = re.compile(
    r"\^|\bsqrt\b|∫|∑|\b(?:prove|proof|derive|derivation|integral|differential|eigen\w*|matrix|matrices|"
    r"probability|expected|theorem|lemma|induction|converge\w*|diverge\w*|irrational|polynomial|"
    r"equation|recurrence|fourier|bayes|variance|distribution|optimi[sz]e|lagrange|countable|"
    r"stationary|group|modulo|combinatori\w*)\b",
    re.IGNORECASE,
)
_MULTI_STEP = re.compile(
    r"\b(?:step by step|step-by-step|first\b.{0,80}\bthen|then|plan|roadmap|timeline|phased?|"
    r"including|with reasons|show (?:the|your) (?:working|reasoning)|each step|milestones|"
    r"and (?:explain|propose|recommend|estimate|test|write|compare|discuss))\b",
    re.IGNORECASE,
)
_DOMAIN = re.compile(
    r"\b(?:gdpr|hipaa|ifrs|asc \d+|gaap|sox|basel|mdr|fda|ema|clinical|patients?|diagnos\w*|dosing|dose|"
    r"pharmaco\w*|contraindicat\w*|statute|liabilit\w*|enforceab\w*|jurisdiction|court|lawsuit|"
    r"compliance|regulat\w*|tax(?:es|ation)?|amt|valuation|wacc|cap table|dilution|derivatives?|"
    r"hedg\w*|portfolio|antitrust|contract|clause|indemnit\w*|subprocessors?|transfer pricing|"
    r"seismic|structural|thermodynamic\w*|quantum)\b",
    re.IGNORECASE,
)
_SIMPLE = re.compile(
    r"^\s*(?:hi|hello|hey|thanks|thank you)\b|\b(?:how do i|how can i|what is|what's|what does|"
    r"where (?:is|can|do)|can i|do you|is there|convert|translate|define|stand for|how many|how much)\b",
    re.IGNORECASE,
)
_CLAUSE = re.compile(r",|;|\band\b|\bor\b|\bbut\b", re.IGNORECASE)

FEATURE_NAMES = (
    "log_words",
    "sentences",
    "clauses",
    "reasoning",
    "code",
    "maths",
    "multi_step",
    "domain",
    "simple",
    "digits",
)


def features(text: str) -> np.ndarray:
    """The cheap features of one query, unscaled (see FEATURE_NAMES)."""
    words = len(text.split())
    return np.array(
        [
            math.log1p(words),
            min(len(re.findall(r"[.!?](?:\s|$)", text)), 10),
            min(len(_CLAUSE.findall(text)), 20),
            min(len(_REASONING.findall(text)), 6),
            min(len(_CODE.findall(text)), 6),
            min(len(_MATH.findall(text)), 6),
            min(len(_MULTI_STEP.findall(text)), 6),
            min(len(_DOMAIN.findall(text)), 6),
            min(len(_SIMPLE.findall(text)), 3),
            min(len(re.findall(r"\d+", text)), 10),
        ],
        dtype=np.float64,
    )


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts: only the text parts count
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def query_text(messages: Sequence[Any]) -> str:
    """What is scored: the last user message, after the tail of the previous user message."""
    user_texts = [
        _content_text(message.get("content"))
        for message in messages
        if isinstance(message, dict) and message.get("role") == "user"
    ]
    user_texts = [text.strip() for text in user_texts if text and text.strip()]
    if not user_texts:
        return ""
    last = user_texts[-1][:MAX_QUERY_CHARACTERS]
    if len(user_texts) == 1:
        return last
    return f"{user_texts[-2][-CONTEXT_CHARACTERS:]}\n{last}"


@dataclass(frozen=True)
class Scorer:
    feature_mean: np.ndarray
    feature_std: np.ndarray
    weights: np.ndarray  # the embedding's weights, then the features'
    bias: float

    def design_matrix(self, texts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
        return design_matrix(texts, embeddings, mean=self.feature_mean, std=self.feature_std)

    def scores(self, texts: Sequence[str], embeddings: np.ndarray | None = None) -> np.ndarray:
        if embeddings is None:
            embeddings = embed(list(texts))
        logits = self.design_matrix(texts, embeddings) @ self.weights + self.bias
        return 1.0 / (1.0 + np.exp(-logits))


def design_matrix(texts: Sequence[str], embeddings: np.ndarray, *, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    raw = np.stack([features(text) for text in texts]) if texts else np.zeros((0, len(FEATURE_NAMES)))
    scaled = (raw - mean) / std * FEATURE_SCALE
    return np.hstack([embeddings.astype(np.float64), scaled])


_scorer: Scorer | None = None
_scorer_lock = threading.Lock()


def load_scorer(path: Path = WEIGHTS_PATH) -> Scorer:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RuntimeError(
            f"The router's weights file {path} is missing: run `python manage.py train_router`."
        ) from None
    if document.get("version") != FORMAT_VERSION or list(document.get("feature_names", [])) != list(FEATURE_NAMES):
        raise RuntimeError(f"{path} was written by another version of the scorer: run `python manage.py train_router`.")
    return Scorer(
        feature_mean=np.array(document["feature_mean"], dtype=np.float64),
        feature_std=np.array(document["feature_std"], dtype=np.float64),
        weights=np.array(document["weights"], dtype=np.float64),
        bias=float(document["bias"]),
    )


def scorer() -> Scorer:
    """The shipped scorer, loaded once per process."""
    global _scorer
    if _scorer is None:
        with _scorer_lock:
            if _scorer is None:
                _scorer = load_scorer()
    return _scorer


def reset_scorer() -> None:
    global _scorer
    with _scorer_lock:
        _scorer = None


def score(text: str) -> float:
    """The complexity of one query, 0..1 (about 7 ms: one sentence embedding)."""
    if not text.strip():
        return 0.0
    return float(scorer().scores([text])[0])


# Training -----------------------------------------------------------------------------


class TrainingDataError(ValueError):
    pass


@dataclass(frozen=True)
class LabelledQuery:
    query: str
    is_large: bool
    split: str


def read_labelled(path: Path) -> list[LabelledQuery]:
    """Rows of a CSV with columns `query` and `tier` (small or large), optionally `split`."""
    try:
        handle = path.open(encoding="utf-8", newline="")
    except OSError as error:
        raise TrainingDataError(f"{path}: cannot read it ({error.strerror}).") from None
    rows: list[LabelledQuery] = []
    with handle:
        reader = csv.DictReader(handle)
        missing = {"query", "tier"} - set(reader.fieldnames or [])
        if missing:
            raise TrainingDataError(f"{path}: the header needs the columns query and tier (missing {sorted(missing)}).")
        for row in reader:
            line = reader.line_num
            query = (row.get("query") or "").strip()
            tier = (row.get("tier") or "").strip().lower()
            if not query:
                raise TrainingDataError(f"{path}:{line}: query is empty.")
            if tier not in ("small", "large"):
                raise TrainingDataError(f"{path}:{line}: tier must be small or large, not {tier!r}.")
            rows.append(LabelledQuery(query=query, is_large=tier == "large", split=(row.get("split") or "").strip()))
    return rows


def _rounded(values: np.ndarray) -> list[float]:
    # Eight significant digits: reproducible across runs, and a small diffable file.
    return [float(f"{value:.8g}") for value in values.tolist()]


def train(rows: Sequence[LabelledQuery], *, source: str) -> dict[str, Any]:
    """Fit the scorer on `rows`; returns the weights document (see load_scorer)."""
    if len({row.is_large for row in rows}) < 2:
        raise TrainingDataError("The training rows need both small and large examples.")
    texts = [row.query for row in rows]
    labels = np.array([1 if row.is_large else 0 for row in rows])
    raw = np.stack([features(text) for text in texts])
    mean = raw.mean(axis=0)
    std = raw.std(axis=0)
    std[std == 0] = 1.0
    mean, std = np.array(_rounded(mean)), np.array(_rounded(std))
    matrix = design_matrix(texts, embed(texts), mean=mean, std=std)
    weights, bias = fit_logistic_regression(matrix, labels, l2=L2, learning_rate=LEARNING_RATE, iterations=ITERATIONS)
    predictions = (matrix @ weights + bias) > 0
    digest = hashlib.sha256("\n".join(f"{row.is_large:d}\t{row.query}" for row in rows).encode()).hexdigest()
    return {
        "version": FORMAT_VERSION,
        "trained_on": source,
        "examples": len(rows),
        "large_examples": int(labels.sum()),
        "training_accuracy": round(float((predictions == labels.astype(bool)).mean()), 4),
        "data_sha256": digest,
        "feature_names": list(FEATURE_NAMES),
        "feature_mean": _rounded(mean),
        "feature_std": _rounded(std),
        "bias": float(f"{bias:.8g}"),
        "weights": _rounded(weights),
    }


def write_weights(document: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
