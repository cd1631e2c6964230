"""Known inputs and outputs for each answer-quality scorer."""

import pytest

from infercost.errors import InputError
from infercost.quality.scorers import SCORERS, Scorer, embed, get_scorer, load_callable


def my_scorer(answer, reference, bonus=0.0):
    """A user scorer, loaded by the tests as 'test_scorers:my_scorer'."""
    return min(1.0, 0.5 * (answer == reference) + bonus)


def bad_scorer(answer, reference):
    return 1.5


def nan_scorer(answer, reference):
    return float("nan")


def text_scorer(answer, reference):
    return "1"


NOT_CALLABLE = 3


def score(name, answer, reference=None, **params):
    return get_scorer(name).fn(answer, reference, **params)


def test_registry_shape():
    assert set(SCORERS) == {"exact", "contains", "regex", "rouge_l", "embedding_similarity", "json_valid", "choice"}
    for name, scorer in SCORERS.items():
        assert isinstance(scorer, Scorer) and scorer.name == name and scorer.description
    with pytest.raises(AttributeError):
        SCORERS["exact"].name = "x"  # frozen


def test_unknown_scorer():
    with pytest.raises(InputError, match=r"unknown scorer 'bleu': expected one of exact, contains") as exc:
        get_scorer("bleu")
    assert exc.value.field == "quality.scorers"


@pytest.mark.parametrize("answer, reference, expected", [
    ("Paris.", "paris", 1.0),
    ("  PARIS!  ", "Paris", 1.0),
    ("New   York\n", "new york?", 1.0),
    ("Lyon", "Paris", 0.0),
    ("Paris is nice", "Paris", 0.0),
])
def test_exact(answer, reference, expected):
    assert score("exact", answer, reference) == expected


def test_exact_without_normalisation():
    assert score("exact", "Paris.", "paris", normalize=False) == 0.0
    assert score("exact", "Paris", "Paris", normalize=False) == 1.0


def test_exact_needs_reference():
    with pytest.raises(InputError, match="needs a reference"):
        score("exact", "Paris", None)


def test_contains():
    assert score("contains", "The capital is Paris.", "paris") == 1.0
    assert score("contains", "The capital is Lyon.", "paris") == 0.0
    assert score("contains", "red and blue", None, strings=["green", "blue"]) == 1.0
    assert score("contains", "red and blue", None, strings=["green", "blue"], mode="all") == 0.0
    assert score("contains", "red, green and blue", None, strings=["green", "blue"], mode="all") == 1.0
    assert score("contains", "Paris", None, strings=["paris"], case_sensitive=True) == 0.0
    assert score("contains", "Paris", None, strings=["Paris"], case_sensitive=True) == 1.0
    with pytest.raises(InputError, match="mode"):
        score("contains", "x", "x", mode="most")
    with pytest.raises(InputError, match="needs a reference answer or 'strings'"):
        score("contains", "x", None)


def test_regex():
    assert score("regex", "It costs 42 dollars", r"\b42\b") == 1.0  # reference used as the pattern
    assert score("regex", "It costs 420 dollars", r"\b42\b") == 0.0
    assert score("regex", "PARIS", None, pattern="paris") == 1.0
    assert score("regex", "PARIS", None, pattern="paris", ignore_case=False) == 0.0
    assert score("regex", "2024-05-01", "ignored", pattern=r"^\d{4}-\d{2}-\d{2}$") == 1.0
    with pytest.raises(InputError, match="bad pattern"):
        score("regex", "x", None, pattern="(")


def test_rouge_l():
    assert score("rouge_l", "The cat sat.", "the cat sat") == 1.0
    assert score("rouge_l", "the cat sat on the mat", "the cat is on the mat") == pytest.approx(5 / 6)
    # LCS 2 ("a c"); precision 2/3, recall 2/4 -> F1 = 4/7
    assert score("rouge_l", "a b c", "a x c y") == pytest.approx(4 / 7)
    assert score("rouge_l", "dogs bark", "cats meow") == 0.0
    assert score("rouge_l", "", "cats meow") == 0.0
    assert score("rouge_l", "...", "cats meow") == 0.0


def test_embedding_similarity():
    ref = "The capital of France is Paris."
    close = score("embedding_similarity", "Paris is France's capital city.", ref)
    far = score("embedding_similarity", "I like green apples.", ref)
    same = score("embedding_similarity", ref, ref)
    assert 0.0 <= far < close <= 1.0
    assert close > 0.7
    assert same >= 0.99


def test_embed_batch():
    vectors = embed(["one", "two", "three"])
    assert vectors.shape == (3, 384)
    assert abs(float((vectors ** 2).sum(axis=1).max()) - 1.0) < 1e-4
    assert embed([]).shape == (0, 384)


@pytest.mark.parametrize("answer, expected", [
    ('{"a": 1}', 1.0),
    ("  [1, 2, 3]\n", 1.0),
    ('```json\n{"a": 1}\n```', 1.0),
    ('```\n{"a": 1}\n```', 1.0),
    ('Here you go:\n```json\n{"a": 1}\n```', 0.0),
    ("{'a': 1}", 0.0),
    ('{"a": 1', 0.0),
    ("", 0.0),
])
def test_json_valid(answer, expected):
    assert score("json_valid", answer) == expected


def test_json_valid_schema():
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    assert score("json_valid", '```json\n{"a": 1}\n```', schema=schema) == 1.0
    assert score("json_valid", '{"a": "one"}', schema=schema) == 0.0
    assert score("json_valid", '{"b": 1}', schema=schema) == 0.0
    with pytest.raises(InputError, match="bad schema"):
        score("json_valid", "{}", schema={"type": "nonsense"})


@pytest.mark.parametrize("answer", [
    "B", "(B)", "B)", "B.", "Answer: B", "answer: (B)", "The answer is B.", "The correct answer is (B) Paris.",
    "B) Paris", "I think B", "I'd go with B.", "A good answer is B", "  b) no, B",
])
def test_choice_right(answer):
    assert score("choice", answer, "B") == 1.0


@pytest.mark.parametrize("answer", ["C", "(C)", "The answer is C", "A", "A is correct", "Paris", ""])
def test_choice_wrong(answer):
    assert score("choice", answer, "B) Paris") == 0.0


def test_choice_reference_forms():
    assert score("choice", "J", "J") == 1.0
    assert score("choice", "Answer: A", "A) Paris") == 1.0
    assert score("choice", "(D)", "(D) Berlin") == 1.0
    with pytest.raises(InputError, match="names no option letter"):
        score("choice", "B", "Paris")


def test_user_callable():
    scorer = get_scorer("test_scorers:my_scorer")
    assert scorer.name == "test_scorers:my_scorer"
    assert scorer.fn("x", "x") == 0.5
    assert scorer.fn("x", "y") == 0.0
    assert scorer("x", "x", bonus=0.5) == 1.0
    assert load_callable("test_scorers:my_scorer").fn("x", "y", bonus=0.25) == 0.25


def test_user_callable_from_module_file(tmp_path, monkeypatch):
    (tmp_path / "myscoring.py").write_text("def score(answer, reference, **p):\n    return len(answer) / 10\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert get_scorer("myscoring:score").fn("abcde", None) == 0.5


@pytest.mark.parametrize("name", ["test_scorers:bad_scorer", "test_scorers:nan_scorer", "test_scorers:text_scorer"])
def test_user_callable_out_of_range(name):
    with pytest.raises(ValueError, match=r"expected a number in \[0, 1\]"):
        get_scorer(name).fn("a", "b")


@pytest.mark.parametrize("spec, why", [
    ("no_such_module_xyz:score", "ModuleNotFoundError"),
    ("test_scorers:missing", "AttributeError"),
    ("test_scorers:NOT_CALLABLE", "not callable"),
    ("test_scorers:", "expected 'module:function'"),
    (":score", "expected 'module:function'"),
])
def test_user_callable_bad_spec(spec, why):
    with pytest.raises(InputError, match=f"cannot import scorer '{spec}': .*{why}") as exc:
        get_scorer(spec)
    assert exc.value.field == "quality.scorers"
