"""`[[scorers]]`: how answers get labels, as typed, validated, frozen objects.

Three types, each a table with a `name` (letters, digits, `_.-`) and a `type`:

- `rules`: ordered `[[scorers.rules]]`, each a `label` with `regex` patterns and/or `keywords`
  (literal phrases matched between word boundaries); the first rule with a match gives its label,
  `default` when none does. Matching ignores case unless `case_sensitive = true`.
- `refusal`: a `rules` scorer with one rule, the shipped refusal patterns
  (`harness.analysis.refusal`) plus `extra_patterns`, labelled `label`, else `default`.
- `judge`: a model grades each answer with a rubric `template`; its verdict is parsed into one of
  `labels` (see `harness.analysis.judge`). `model` names a `[[models]]` entry or is an inline
  model table of its own (the keys of a `[[models]]` entry, `[defaults]` applying; `name`
  defaults to the scorer's). The scorer's `temperature` replaces the model's temperatures.

Every regex is compiled (by RE2, `harness.patterns`: one that needs backtracking is refused) and
every template placeholder parsed here, at load time, so a typo is a config error naming the key,
never a failure halfway through scoring.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from harness.config.models import ModelConfig
from harness.fields import FieldError, described, from_table, option
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
    regex: tuple[str, ...] = option((), "regular expressions (RE2) that match")
    keywords: tuple[str, ...] = option((), "literal phrases that match between word boundaries")


@dataclass(frozen=True)
class RuleScorer:
    """`type = "rules"`: the first rule that matches the answer gives its label."""

    name: str
    rules: tuple[Rule, ...]
    default: str = "no_match"
    case_sensitive: bool = False

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


Scorer = RuleScorer | RefusalScorer | JudgeScorer


_NAMED = described("the scorer's name (letters, digits, '_', '.', '-')")
_CASE = "whether matching minds case"


@dataclass(frozen=True)
class _Head:
    name: str = field(metadata=_NAMED)
    type: Literal["rules", "refusal", "judge"] = field(metadata=described("the scorer's type"))


@dataclass(frozen=True)
class _RulesTable:
    """`type = "rules"`: the first rule that matches gives its label."""

    name: str = field(metadata=_NAMED)
    type: str = field(metadata=described('"rules"'))
    rules: tuple[dict[str, Any], ...] = field(
        metadata=described("the rules, in order: [[scorers.rules]]", nonempty=True)
    )
    default: str = option("no_match", "the label when no rule matches")
    case_sensitive: bool = option(False, _CASE)


@dataclass(frozen=True)
class _RefusalTable:
    """`type = "refusal"`: the shipped refusal patterns and any extra ones."""

    name: str = field(metadata=_NAMED)
    type: str = field(metadata=described('"refusal"'))
    label: str = option("refusal", "the label of an answer that refuses")
    default: str = option("no_refusal", "the label of any other answer")
    extra_patterns: tuple[str, ...] = option((), "regular expressions (RE2) that also refuse")
    case_sensitive: bool = option(False, _CASE)


@dataclass(frozen=True)
class _JudgeTable:
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


# Builds an inline judge model from its table and key path (config.py's `[[models]]` parser).
InlineModel = Callable[[Mapping[str, Any], str], ModelConfig]


def parse_scorers(
    tables: Sequence[Any],
    models: Sequence[ModelConfig],
    inline_model: InlineModel,
    broken: Collection[str] = (),
) -> tuple[Scorer, ...]:
    """Every `[[scorers]]` entry, checked against the config's `[[models]]` (`broken`: the names
    of entries that are wrong, told already). Raises a FieldError standing for every problem."""
    scorers: list[Scorer] = []
    errors: list[FieldError] = []
    for index, table in enumerate(tables):
        try:
            scorer = _scorer(table, f"scorers[{index}]", scorers, models, inline_model, broken)
        except FieldError as exc:
            errors.append(exc)
            continue
        if scorer is not None:
            scorers.append(scorer)
    if errors:
        raise FieldError.of(errors)
    return tuple(scorers)


def _scorer(
    table: Any,
    where: str,
    scorers: Sequence[Scorer],
    models: Sequence[ModelConfig],
    inline_model: InlineModel,
    broken: Collection[str],
) -> Scorer | None:
    """One `[[scorers]]` entry; None for a judge of a model entry that is wrong."""
    if not isinstance(table, Mapping):
        raise FieldError(where, "expected a table")
    head = from_table(_Head, {k: table[k] for k in ("name", "type") if k in table}, where)
    if not _NAME.fullmatch(head.name) or len(head.name) > 64:
        raise FieldError(f"{where}.name", "use 1-64 letters, digits, '_', '.' or '-'")
    if head.name in {s.name for s in scorers}:
        raise FieldError(f"{where}.name", f'duplicate scorer name "{head.name}"')
    if head.type == "rules":
        return _rules(table, where)
    if head.type == "refusal":
        return _refusal(table, where)
    if table.get("model") in broken:
        return None
    return _judge(table, where, models, inline_model)


def _rules(table: Mapping[str, Any], where: str) -> RuleScorer:
    parsed = from_table(_RulesTable, table, where)
    rules = []
    for index, entry in enumerate(parsed.rules):
        path = f"{where}.rules[{index}]"
        rule = from_table(Rule, entry, path)
        _label(rule.label, f"{path}.label")
        if not rule.regex and not rule.keywords:
            raise FieldError(path, "give regex or keywords (or both)")
        for number, pattern in enumerate(rule.regex):
            compile_pattern(pattern, f"{path}.regex[{number}]")
        for number, keyword in enumerate(rule.keywords):
            if not keyword.strip():
                raise FieldError(f"{path}.keywords[{number}]", "empty keyword")
        rules.append(rule)
    _label(parsed.default, f"{where}.default")
    return RuleScorer(parsed.name, tuple(rules), parsed.default, parsed.case_sensitive)


def _refusal(table: Mapping[str, Any], where: str) -> RefusalScorer:
    parsed = from_table(_RefusalTable, table, where)
    _label(parsed.label, f"{where}.label")
    _label(parsed.default, f"{where}.default")
    if parsed.label == parsed.default:
        raise FieldError(f"{where}.default", "must differ from label")
    for number, pattern in enumerate(parsed.extra_patterns):
        compile_pattern(pattern, f"{where}.extra_patterns[{number}]")
    return RefusalScorer(
        parsed.name, parsed.label, parsed.default, parsed.extra_patterns, parsed.case_sensitive
    )


def _judge(
    table: Mapping[str, Any], where: str, models: Sequence[ModelConfig], inline_model: InlineModel
) -> JudgeScorer:
    parsed = from_table(_JudgeTable, table, where)
    for number, label in enumerate(parsed.labels):
        _label(label, f"{where}.labels[{number}]")
        if label.casefold() == UNPARSEABLE.casefold():
            raise FieldError(f"{where}.labels[{number}]", f"{UNPARSEABLE} is the harness's own")
        default = parsed.verdict_pattern == DEFAULT_VERDICT
        if default and not _VERDICT_WORD.fullmatch(label):
            raise FieldError(
                f"{where}.labels[{number}]",
                f"the default verdict_pattern reads letters, digits, '_' and '-' only, never "
                f"{label!r}: give a verdict_pattern that can",
            )
    folded = [label if parsed.case_sensitive else label.casefold() for label in parsed.labels]
    if len(set(folded)) < len(folded):
        raise FieldError(f"{where}.labels", "a label is listed twice")
    verdict = compile_pattern(parsed.verdict_pattern, f"{where}.verdict_pattern")
    if verdict.groups != 1:
        raise FieldError(f"{where}.verdict_pattern", "needs exactly one (group): the label")
    placeholders = template_fields(parsed.template, f"{where}.template")
    if parsed.system:
        template_fields(parsed.system, f"{where}.system")  # literal braces doubled, as in template
    if isinstance(parsed.model, str):
        names = [m.name for m in models]
        if parsed.model not in names:
            known = ", ".join(names) or "none"
            raise FieldError(
                f"{where}.model", f'no [[models]] entry named "{parsed.model}" (models: {known})'
            )
        model_where = f"models[{names.index(parsed.model)}]"
        model = models[names.index(parsed.model)]
    else:
        model_where = f"{where}.model"
        model = inline_model({"name": parsed.name, **parsed.model}, model_where)
    return JudgeScorer(
        name=parsed.name,
        model=replace(model, temperatures=(parsed.temperature,)),
        where=model_where,
        template=parsed.template,
        labels=parsed.labels,
        placeholders=placeholders,
        temperature=parsed.temperature,
        system=parsed.system,
        verdict_pattern=parsed.verdict_pattern,
        case_sensitive=parsed.case_sensitive,
        budget_usd=parsed.budget_usd,
    )


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
