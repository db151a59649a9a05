"""`[[scorers]]`: how answers get labels, as typed, validated, frozen objects.

Five types, each a table with a `name` (letters, digits, `_.-`) and a `type`:

- `rules`: ordered `[[scorers.rules]]`, each a `label` with `regex` patterns and/or `keywords`
  (literal phrases matched between word boundaries); the first rule with a match gives its label,
  `default` when none does. Matching ignores case unless `case_sensitive = true`.
- `refusal`: a `rules` scorer with one rule, the shipped refusal patterns
  (`harness.analysis.refusal`) plus `extra_patterns`, labelled `label`, else `default`.
- `target`: each answer, or another scorer's label (`of`), against a field of its prompt (`field`:
  `target`, `ground_truth`, any other), labelled `correct` or `incorrect` (see
  `harness.analysis.targets`); with `of`, `correct_for` maps each label to the target value (or
  values) it is correct for, and a label it does not name is given as it is (counted apart).
- `python`: a function of your own (`function = "module:callable"`, importable from the config's
  folder) labels each answer (see `harness.analysis.functions`).
- `judge`: a model grades each answer with a rubric `template`; its verdict is parsed into one of
  `labels` (see `harness.analysis.judge`). `model` names a `[[models]]` entry or is an inline
  model table of its own (the keys of a `[[models]]` entry, `[defaults]` applying; `name`
  defaults to the scorer's). The scorer's `temperature` replaces the model's temperatures.

A `rules`, `python` or `judge` scorer may name the label by which it says an item exists
(`claims`) and the one by which it says it does not (`denies`): the hallucination view of
`stats` and the report reads them (`harness.analysis.probe_labels`); they are no part of the
scorer's definition, so changing them rescores nothing.

Every regex is compiled (by RE2, `harness.patterns`: one that needs backtracking is refused) and
every template placeholder parsed here, at load time, so a typo is a config error naming the key,
never a failure halfway through scoring.
"""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from harness.config.models import ModelConfig
from harness.fields import FieldError, checked, described, from_table, option, table_values
from harness.patterns import Pattern, PatternError, compile_user_pattern

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
# A judge's verdict: the label after `VERDICT:` (markdown bold allowed), the last one in the text.
DEFAULT_VERDICT = r"VERDICT:\s*\**\s*([A-Za-z0-9_-]+)"
_VERDICT_WORD = re.compile(r"[A-Za-z0-9_-]+")  # what the default pattern's group can read
# The label of a judge's answer that gives no verdict: no scorer may give it as one of its own.
UNPARSEABLE = "UNPARSEABLE"
# Placeholders every judge template may use; any other must be a field of every prompt.
ANSWER_FIELDS = ("prompt", "response", "prompt_id", "category", "is_synthetic_probe", "labels")


@dataclass(frozen=True)
class Rule:
    """One `[[scorers.rules]]` entry: its label, and what makes it match."""

    label: str = field(metadata=described("the label this rule gives"))
    regex: tuple[str, ...] = option(
        (), "regular expressions (RE2) that match; a rule needs regex or keywords"
    )
    keywords: tuple[str, ...] = option((), "literal phrases that match between word boundaries")


@dataclass(frozen=True)
class RuleScorer:
    """`type = "rules"`: the first rule that matches the answer gives its label."""

    name: str
    rules: tuple[Rule, ...]
    default: str = "no_match"
    case_sensitive: bool = False
    claims: str = ""
    denies: str = ""

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label it can give, the default last."""
        given = dict.fromkeys(r.label for r in self.rules if r.label != self.default)
        return (*given, self.default)


@dataclass(frozen=True)
class RefusalScorer:
    """`type = "refusal"`: the shipped refusal patterns and any extra ones, as one rule."""

    name: str
    label: str = "refusal"
    default: str = "no_refusal"
    extra_patterns: tuple[str, ...] = ()
    case_sensitive: bool = False

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label it can give."""
        return (self.label, self.default)


@dataclass(frozen=True)
class JudgeScorer:
    """`type = "judge"`: a model's verdict on each answer, parsed into one of `labels`.

    `model` is the judge's model entry, its temperatures replaced by the scorer's `temperature`;
    `where` says where the config defines it (`models[2]`, or `scorers[1].model` inline)."""

    name: str
    model: ModelConfig
    where: str
    template: str
    labels: tuple[str, ...]
    placeholders: tuple[str, ...]
    temperature: float = 0.0
    system: str = ""
    verdict_pattern: str = DEFAULT_VERDICT
    case_sensitive: bool = False
    budget_usd: float | None = None
    claims: str = ""
    denies: str = ""


# How a target scorer compares an answer with its prompt's target.
Match = Literal["exact", "includes", "regex", "numeric", "choice"]
CORRECT, INCORRECT = "correct", "incorrect"


@dataclass(frozen=True)
class TargetScorer:
    """`type = "target"`: an answer, or another scorer's label (`of`), against its prompt's
    `field`. `correct_for`: with `of`, each label and the target values it is correct for."""

    name: str
    field: str = "target"
    match: Match = "exact"
    pattern: str = "{target}"
    tolerance: float = 0.0
    case_sensitive: bool = False
    of: str = ""
    correct_for: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def labels(self) -> tuple[str, ...]:
        """Every label it gives of its own (with `of`, the other's other labels as they are)."""
        return (CORRECT, INCORRECT)


@dataclass(frozen=True)
class PythonScorer:
    """`type = "python"`: `function` (`module:callable`) gives each answer its label."""

    name: str
    function: str
    claims: str = ""
    denies: str = ""

    @property
    def labels(self) -> tuple[str, ...]:
        """The labels it gives are the function's: none known before it runs."""
        return ()


Scorer = RuleScorer | RefusalScorer | JudgeScorer | TargetScorer | PythonScorer
# The scorers that can say whether an item exists: `claims` and `denies` name the labels that
# do (the hallucination view of `stats` and the report: `harness.analysis.probe_labels`).
ExistenceScorer = RuleScorer | JudgeScorer | PythonScorer


_NAMED = described("the scorer's name (letters, digits, '_', '.', '-')")
_FUNCTION = r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*"
_CASE = "whether matching minds case"
_CLAIMS = (
    "the label that says the item exists: its rate on synthetic probes is the hallucination "
    "rate (stats, report)"
)
_DENIES = "the label that says the item does not exist: its rate on real items is false denial"


@dataclass(frozen=True)
class _Kind:
    type: Literal["rules", "refusal", "judge", "target", "python"] = field(
        metadata=described("the scorer's type")
    )


@dataclass(frozen=True)
class RulesScorerKeys:
    """`type = "rules"`: the first rule that matches gives its label."""

    name: str = field(metadata=_NAMED)
    type: str = field(metadata=described('"rules"'))
    rules: tuple[dict[str, Any], ...] = field(
        metadata=described("the rules, in order: [[scorers.rules]]", nonempty=True)
    )
    default: str = option("no_match", "the label when no rule matches")
    case_sensitive: bool = option(False, _CASE)
    claims: str = option("", _CLAIMS)
    denies: str = option("", _DENIES)


@dataclass(frozen=True)
class RefusalScorerKeys:
    """`type = "refusal"`: the shipped refusal patterns and any extra ones."""

    name: str = field(metadata=_NAMED)
    type: str = field(metadata=described('"refusal"'))
    label: str = option("refusal", "the label of an answer that refuses")
    default: str = option("no_refusal", "the label of any other answer")
    extra_patterns: tuple[str, ...] = option((), "regular expressions (RE2) that also refuse")
    case_sensitive: bool = option(False, _CASE)


@dataclass(frozen=True)
class JudgeScorerKeys:
    """`type = "judge"`: a model's verdict on each answer."""

    name: str = field(metadata=_NAMED)
    type: str = field(metadata=described('"judge"'))
    model: str | dict[str, Any] = field(
        metadata=described("a [[models]] entry's name, or an inline model table")
    )
    template: str = field(
        metadata=described("the rubric sent for each answer: {prompt}, {response}, ...")
    )
    labels: tuple[str, ...] = field(
        metadata=described("the verdicts the judge may give", nonempty=True)
    )
    temperature: float = option(0.0, "the judge's temperature", min=0, max=2.0)
    system: str = option("", "the judge's system prompt (a template too)")
    verdict_pattern: str = option(
        DEFAULT_VERDICT, "a regular expression whose one group reads the label"
    )
    case_sensitive: bool = option(False, "whether labels mind case")
    budget_usd: float | None = option(
        None, "the most the judge's run may spend, in USD", min=0, max=1e9
    )
    claims: str = option("", _CLAIMS)
    denies: str = option("", _DENIES)


@dataclass(frozen=True)
class TargetScorerKeys:
    """`type = "target"`: each answer, or another scorer's label, against its prompt's target."""

    name: str = field(metadata=_NAMED)
    type: str = field(metadata=described('"target"'))
    field: str = option(
        "target", "the prompt's field holding the expected answer (target, ground_truth, ...)"
    )
    match: Match = option(
        "exact", "how an answer meets it: exact, includes, regex, numeric or choice (a letter)"
    )
    pattern: str = option(
        "{target}", 'match = "regex": a regular expression (RE2), {target} standing for it'
    )
    tolerance: float = option(
        0.0, 'match = "numeric": the largest difference still correct', min=0, max=1e300
    )
    case_sensitive: bool = option(False, _CASE)
    of: str = option("", "another scorer: its label is compared instead of the answer")
    # (`field` names a key above: the function is reached through its module here)
    correct_for: dict[str, Any] = dataclasses.field(
        default_factory=dict,
        metadata=described(
            "with of: [scorers.correct_for], each of its labels and the target value (or list "
            "of values) it is right for"
        ),
    )


@dataclass(frozen=True)
class PythonScorerKeys:
    """`type = "python"`: a function of your own labels each answer."""

    name: str = field(metadata=_NAMED)
    type: str = field(metadata=described('"python"'))
    function: str = field(
        metadata=described(
            '"module:callable", importable from the config\'s folder: (answer, prompt) -> label'
        )
    )
    claims: str = option("", _CLAIMS)
    denies: str = option("", _DENIES)


# Builds an inline judge model from its table and key path (config.py's `[[models]]` parser).
InlineModel = Callable[[Mapping[str, Any], str], ModelConfig]


def parse_scorers(
    tables: Sequence[tuple[int, Mapping[str, Any]]],
    models: Sequence[ModelConfig],
    inline_model: InlineModel,
    broken: Collection[str],
    errors: list[FieldError],
) -> tuple[Scorer, ...]:
    """The `[[scorers]]` entries (each with its index) that are right, checked against the
    config's `[[models]]` (`broken`: the names of entries that are wrong, told already); every
    problem of every entry is added to `errors`. Names are not compared here: two scorers of one
    name are the caller's to tell, whether or not each is right otherwise."""
    scorers = []
    for index, table in tables:
        where = f"scorers[{index}]"
        problems: list[FieldError] = []
        scorer = _scorer(table, where, models, inline_model, broken, problems)
        errors += problems
        if scorer is not None and not problems:
            scorers.append(scorer)
    _check_of(tables, errors)
    return tuple(scorers)


def _check_of(tables: Sequence[tuple[int, Mapping[str, Any]]], errors: list[FieldError]) -> None:
    """A target scorer's `of` names another scorer of the config (right or not: a wrong one is
    told already), not a target scorer."""
    names = {t["name"]: t.get("type") for _, t in tables if isinstance(t.get("name"), str)}
    for index, table in tables:
        of = table.get("of")
        if table.get("type") != "target" or not isinstance(of, str) or not of:
            continue
        path = f"scorers[{index}].of"
        if of == table.get("name"):
            errors.append(FieldError(path, "names this scorer: name the one whose labels it reads"))
        elif of not in names:
            known = ", ".join(str(n) for n in names if n != table.get("name")) or "none"
            errors.append(FieldError(path, f'no scorer named "{of}" (scorers: {known})'))
        elif names[of] == "target":
            errors.append(FieldError(path, f'"{of}" is a target scorer: name the one it reads'))


def _scorer(
    table: Mapping[str, Any],
    where: str,
    models: Sequence[ModelConfig],
    inline_model: InlineModel,
    broken: Collection[str],
    errors: list[FieldError],
) -> Scorer | None:
    """One `[[scorers]]` entry, or None with its problems added to `errors`."""
    kind, wrong = table_values(_Kind, {k: v for k, v in table.items() if k == "type"}, where)
    if wrong:
        errors += wrong
        return None
    name = table.get("name")
    if isinstance(name, str) and (not _NAME.fullmatch(name) or len(name) > 64):
        errors.append(FieldError(f"{where}.name", "use 1-64 letters, digits, '_', '.' or '-'"))
    if kind["type"] == "rules":
        return _rules(table, where, errors)
    if kind["type"] == "refusal":
        return _refusal(table, where, errors)
    if kind["type"] == "target":
        return _target(table, where, errors)
    if kind["type"] == "python":
        return _python(table, where, errors)
    return _judge(table, where, models, inline_model, broken, errors)


def _rules(table: Mapping[str, Any], where: str, errors: list[FieldError]) -> RuleScorer | None:
    parsed, wrong = table_values(RulesScorerKeys, table, where)
    errors += wrong
    rules = []
    for index, entry in enumerate(parsed.get("rules", ())):
        path = f"{where}.rules[{index}]"
        rule = checked(errors, from_table, Rule, entry, path)
        if rule is None:
            continue
        checked(errors, _label, rule.label, f"{path}.label")
        if not rule.regex and not rule.keywords:
            errors.append(FieldError(path, "give regex or keywords (or both)"))
        for number, pattern in enumerate(rule.regex):
            checked(errors, compile_pattern, pattern, f"{path}.regex[{number}]")
        for number, keyword in enumerate(rule.keywords):
            if not keyword.strip():
                errors.append(FieldError(f"{path}.keywords[{number}]", "empty keyword"))
        rules.append(rule)
    if "default" in parsed:
        checked(errors, _label, parsed["default"], f"{where}.default")
    default = parsed.get("default", RulesScorerKeys.default)
    whole = len(rules) == len(parsed.get("rules", ())) and "rules" in parsed  # else: told
    given = (*(r.label for r in rules), default) if whole else None
    _check_probe_labels(parsed, given, where, errors)
    if wrong or len(rules) < len(parsed.get("rules", ())):
        return None
    keys = ("default", "case_sensitive", "claims", "denies")
    return RuleScorer(parsed["name"], tuple(rules), **_given(parsed, *keys))


def _refusal(
    table: Mapping[str, Any], where: str, errors: list[FieldError]
) -> RefusalScorer | None:
    parsed, wrong = table_values(RefusalScorerKeys, table, where)
    errors += wrong
    for key in ("label", "default"):
        if key in parsed:
            checked(errors, _label, parsed[key], f"{where}.{key}")
    label = parsed.get("label", RefusalScorerKeys.label)
    if "default" in parsed and parsed["default"] == label:
        errors.append(FieldError(f"{where}.default", "must differ from label"))
    for number, pattern in enumerate(parsed.get("extra_patterns", ())):
        checked(errors, compile_pattern, pattern, f"{where}.extra_patterns[{number}]")
    if wrong:
        return None
    keys = ("label", "default", "extra_patterns", "case_sensitive")
    return RefusalScorer(parsed["name"], **_given(parsed, *keys))


def _python(table: Mapping[str, Any], where: str, errors: list[FieldError]) -> PythonScorer | None:
    parsed, wrong = table_values(PythonScorerKeys, table, where)
    errors += wrong
    function = parsed.get("function")
    if isinstance(function, str) and not re.fullmatch(_FUNCTION, function):
        message = 'expected "module:callable", such as "my_scorers:grade"'
        errors.append(FieldError(f"{where}.function", message))
    _check_probe_labels(parsed, None, where, errors)
    keys = ("claims", "denies")
    return (
        None
        if errors
        else PythonScorer(parsed["name"], parsed["function"], **_given(parsed, *keys))
    )


def _target(table: Mapping[str, Any], where: str, errors: list[FieldError]) -> TargetScorer | None:
    parsed, wrong = table_values(TargetScorerKeys, table, where)
    errors += wrong
    match, of = parsed.get("match", "exact"), parsed.get("of", "")
    if "field" in parsed and not parsed["field"].strip():
        errors.append(FieldError(f"{where}.field", "name a field of the prompts"))
    if "pattern" in parsed:
        if "{target}" not in parsed["pattern"]:
            errors.append(FieldError(f"{where}.pattern", "needs {target}: where the target goes"))
        else:
            example = parsed["pattern"].replace("{target}", "x")
            checked(errors, compile_pattern, example, f"{where}.pattern")
    told = [key for key in ("pattern", "tolerance") if key in parsed and match != _NEEDS[key]]
    for key in told:
        errors.append(FieldError(f"{where}.{key}", f'only for match = "{_NEEDS[key]}"'))
    correct_for = _correct_for(parsed.get("correct_for", {}), f"{where}.correct_for", errors)
    if of and not parsed.get("correct_for"):
        errors.append(FieldError(f"{where}.correct_for", "with of, say which label is right when"))
    if correct_for and not of:
        errors.append(
            FieldError(f"{where}.of", "correct_for maps another scorer's labels: name it")
        )
    if of and "match" in parsed:
        errors.append(
            FieldError(f"{where}.match", "with of, labels are compared as correct_for says")
        )
    if errors:  # this entry's own problems (told to the caller)
        return None
    keys = ("field", "match", "pattern", "tolerance", "case_sensitive", "of")
    return TargetScorer(parsed["name"], **_given(parsed, *keys), correct_for=correct_for)


_NEEDS = {"pattern": "regex", "tolerance": "numeric"}


def _correct_for(
    table: Mapping[str, Any], path: str, errors: list[FieldError]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`correct_for`: each label with the target values (text) it is correct for."""
    found = []
    for label, given in table.items():
        where = f"{path}.{label}"
        checked(errors, _label, label, where)
        values = target_texts(given)
        if values is None:
            errors.append(FieldError(where, "expected a value or a list of values"))
            continue
        found.append((label, values))
    return tuple(found)


def target_texts(given: Any) -> tuple[str, ...] | None:
    """A target (a value, or a list of values: any one will do) as texts: a string as it is, a
    number or flag as JSON writes it; None when it is neither."""
    values = given if isinstance(given, list) else [given]
    if not values or not all(isinstance(v, str | int | float | bool) for v in values):
        return None
    return tuple(_text(v) for v in values)


def _text(value: str | float | bool) -> str:
    if isinstance(value, str):
        return value
    return "true" if value is True else "false" if value is False else _number(value)


def _number(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _judge(
    table: Mapping[str, Any],
    where: str,
    models: Sequence[ModelConfig],
    inline_model: InlineModel,
    broken: Collection[str],
    errors: list[FieldError],
) -> JudgeScorer | None:
    parsed, wrong = table_values(JudgeScorerKeys, table, where)
    errors += wrong
    _judge_labels(parsed, table, where, errors)
    _check_probe_labels(parsed, parsed.get("labels"), where, errors)  # no labels: told
    if "verdict_pattern" in parsed or "verdict_pattern" not in table:
        pattern = parsed.get("verdict_pattern", DEFAULT_VERDICT)
        verdict = checked(errors, compile_pattern, pattern, f"{where}.verdict_pattern")
        if verdict is not None and verdict.groups != 1:
            errors.append(
                FieldError(f"{where}.verdict_pattern", "needs exactly one (group): the label")
            )
    placeholders = None
    if "template" in parsed:
        placeholders = checked(errors, template_fields, parsed["template"], f"{where}.template")
    if parsed.get("system"):  # literal braces doubled, as in template
        checked(errors, template_fields, parsed["system"], f"{where}.system")
    found = _judge_model(parsed, where, models, inline_model, broken, errors)
    if wrong or found is None or placeholders is None:
        return None
    model_where, model = found
    return JudgeScorer(
        name=parsed["name"],
        model=replace(model, temperatures=(parsed.get("temperature", 0.0),)),
        where=model_where,
        template=parsed["template"],
        labels=parsed["labels"],
        placeholders=placeholders,
        **_given(
            parsed,
            *("temperature", "system", "verdict_pattern", "case_sensitive", "budget_usd"),
            *("claims", "denies"),
        ),
    )


def _judge_labels(
    parsed: Mapping[str, Any], table: Mapping[str, Any], where: str, errors: list[FieldError]
) -> None:
    """A judge's labels: each a label of its own, and one its verdict_pattern can read."""
    labels = parsed.get("labels", ())
    # A verdict_pattern given but wrong is told already: what it reads is not known.
    default = "verdict_pattern" not in table or parsed.get("verdict_pattern") == DEFAULT_VERDICT
    for number, label in enumerate(labels):
        path = f"{where}.labels[{number}]"
        checked(errors, _label, label, path)
        if label.casefold() == UNPARSEABLE.casefold():
            errors.append(FieldError(path, f"{UNPARSEABLE} is the harness's own"))
        elif default and not _VERDICT_WORD.fullmatch(label):
            errors.append(
                FieldError(
                    path,
                    f"the default verdict_pattern reads letters, digits, '_' and '-' only, "
                    f"never {label!r}: give a verdict_pattern that can",
                )
            )
    if parsed.get("case_sensitive", False):
        folded = list(labels)
    else:
        folded = [label.casefold() for label in labels]
    if len(set(folded)) < len(folded):
        errors.append(FieldError(f"{where}.labels", "a label is listed twice"))


def _judge_model(
    parsed: Mapping[str, Any],
    where: str,
    models: Sequence[ModelConfig],
    inline_model: InlineModel,
    broken: Collection[str],
    errors: list[FieldError],
) -> tuple[str, ModelConfig] | None:
    """Where a judge's model is defined and the model; None when it is not right (told in
    `errors`, or already where its `[[models]]` entry is)."""
    model = parsed.get("model")
    if model is None:
        return None
    if isinstance(model, str):
        if model in broken:
            return None
        names = [m.name for m in models]
        if model not in names:
            known = ", ".join(dict.fromkeys([*names, *sorted(broken)])) or "none"
            message = f'no [[models]] entry named "{model}" (models: {known})'
            errors.append(FieldError(f"{where}.model", message))
            return None
        return f"models[{names.index(model)}]", models[names.index(model)]
    model_where = f"{where}.model"
    # The scorer's name, when it is right, else a stand-in: its own problem is told already.
    table = {"name": parsed.get("name", "judge"), **model}
    inline = checked(errors, inline_model, table, model_where)
    return None if inline is None else (model_where, inline)


def _check_probe_labels(
    parsed: Mapping[str, Any],
    labels: Sequence[str] | None,
    where: str,
    errors: list[FieldError],
) -> None:
    """`claims` and `denies`: each a label the scorer gives (of `labels`; None: not known before
    it runs), not the same one."""
    for key in ("claims", "denies"):
        given = parsed.get(key)
        if not given:
            continue
        path = f"{where}.{key}"
        if labels is not None and given not in labels:
            errors.append(
                FieldError(path, f"{given!r} is not one of its labels ({', '.join(labels)})")
            )
        else:
            checked(errors, _label, given, path)
    if parsed.get("claims") and parsed.get("claims") == parsed.get("denies"):
        errors.append(FieldError(f"{where}.denies", "must differ from claims"))


def _given(parsed: Mapping[str, Any], *keys: str) -> dict[str, Any]:
    """The values of `keys` that the table gives (the others take their defaults)."""
    return {key: parsed[key] for key in keys if key in parsed}


def _label(label: str, path: str) -> None:
    if not label.strip() or label != label.strip():
        raise FieldError(path, "a label is a non-empty string without surrounding spaces")


def compile_pattern(pattern: str, path: str) -> Pattern:
    """A regular expression RE2 runs, or a FieldError saying why it is not one."""
    try:
        return compile_user_pattern(pattern)
    except PatternError as exc:
        raise FieldError(path, f"invalid regular expression: {exc}") from None


def template_fields(template: str, path: str) -> tuple[str, ...]:
    """The placeholders of a `str.format` template, in order of first use; plain names only
    (no `{0}`, `{a.b}`, `{a[0]}`, `!r` or `:>10`): literal braces are written `{{` and `}}`."""
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise FieldError(path, f"{exc} (write a literal brace as {{{{ or }}}})") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "")
            shown += f":{spec}" if spec else ""
            raise FieldError(path, f"{shown}}}: use a plain field name such as {{response}}")
        if name not in names:
            names.append(name)
    return tuple(names)
