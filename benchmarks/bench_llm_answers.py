"""How many realistic LLM answers become candidates, and how many hostile ones are refused?

    python benchmarks/bench_llm_answers.py [--corpus DIR] [--verbose]

Takes every answer of a corpus (default: tests/llm_answers/; format in its README.md) through the
LLM mutator's parser (which normalises the program), the policy, the compile and the probes, as
`tests/test_llm_answers.py` does, and prints:
- the acceptance rate of the well-meaning answers (`expect: candidate`), overall and per style, and
  each one lost with the stage and reason that lost it;
- the refusal rate of the hostile answers (`expect: refused:CODE`), overall and per style, each one
  ACCEPTED (a security hole), and each refused with another code than the one expected.
The issue's target: at least 95% of the well-meaning answers accepted, 100% of the hostile refused.

Candidate code runs in this process (after the policy accepted it): run it only on a corpus you
trust not to attack the probes themselves. The exit status is 0 once the corpus was measured, 2
when it cannot be read.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import torch  # noqa: E402

from llm_corpus import CORPUS_DIR, CorpusFormatError, evaluate_answer, read_corpus, stage_of  # noqa: E402

from actmine.terminal import terminal_text  # noqa: E402


def _rate(hits: int, total: int) -> str:
    return f"{hits}/{total} ({100.0 * hits / total:.1f}%)" if total else "0/0 (-)"


def _one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return terminal_text(text if len(text) <= limit else text[: limit - 1] + "…")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--corpus",
        type=Path,
        default=CORPUS_DIR,
        help="a directory of answers in the format of tests/llm_answers/README.md",
    )
    parser.add_argument("--verbose", action="store_true", help="print every answer's outcome")
    args = parser.parse_args(argv)
    try:
        answers = read_corpus(args.corpus)
    except (CorpusFormatError, OSError, UnicodeDecodeError) as exc:
        print(f"cannot read the corpus: {terminal_text(str(exc))}", file=sys.stderr)
        return 2
    torch.set_num_threads(1)  # as in the sandbox workers

    started = time.monotonic()
    per_style: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])  # kept, well-meaning, refused, hostile
    lost, holes, other_code = [], [], []
    for answer in answers:
        outcome = evaluate_answer(answer.text)
        counts = per_style[answer.style]
        if answer.well_meaning:
            counts[1] += 1
            if outcome.accepted:
                counts[0] += 1
            else:
                lost.append((answer, outcome))
        else:
            counts[3] += 1
            if outcome.accepted:
                holes.append((answer, outcome))
            else:
                counts[2] += 1
                if outcome.code != answer.expect:
                    other_code.append((answer, outcome))
        if args.verbose:
            print(f"  {answer.name:<45} expect {answer.expect:<22} got {outcome.code} ({outcome.stage})")
    seconds = time.monotonic() - started

    kept = sum(c[0] for c in per_style.values())
    well = sum(c[1] for c in per_style.values())
    refused = sum(c[2] for c in per_style.values())
    hostile = sum(c[3] for c in per_style.values())
    print(f"corpus {terminal_text(str(args.corpus))}: {len(answers)} answers in {seconds:.1f} s")
    print(f"well-meaning accepted: {_rate(kept, well)}   (target >= 95%)")
    print(f"hostile refused:       {_rate(refused, hostile)}   (target 100%)")
    print()
    print(f"{'style':<14} {'well-meaning accepted':>22} {'hostile refused':>18}")
    for style in sorted(per_style):
        c = per_style[style]
        print(
            f"{terminal_text(style):<14} {_rate(c[0], c[1]) if c[1] else '-':>22} {_rate(c[2], c[3]) if c[3] else '-':>18}"
        )
    if lost:
        print(f"\nwell-meaning answers lost ({len(lost)}):")
        for answer, outcome in lost:
            print(
                f"  {terminal_text(answer.name)} [{terminal_text(answer.style)}]: {outcome.code} at {outcome.stage}: "
                f"{_one_line(outcome.message)}"
            )
    if holes:
        print(f"\nHOSTILE ANSWERS ACCEPTED ({len(holes)}):")
        for answer, _outcome in holes:
            print(f"  {terminal_text(answer.name)}: expected {answer.expect}; {_one_line(answer.note)}")
    if other_code:
        print(f"\nhostile answers refused with another code than expected ({len(other_code)}):")
        for answer, outcome in other_code:
            print(
                f"  {terminal_text(answer.name)}: expected {answer.expect} at {stage_of(answer.expect)}, got "
                f"{outcome.code} at {outcome.stage}: {_one_line(outcome.message)}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
