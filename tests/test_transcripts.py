"""The reference reproduces every line the documents printed."""

from pathlib import Path

import pytest

from crosscheck import blas, cases, transcript

CASES = list(cases.CASES)
DOCUMENTS = Path(__file__).resolve().parents[2] / "shared" / "documents"


@pytest.mark.parametrize("case", CASES)
def test_transcript_matches_document(case, reference_runs):
    diffs = transcript.compare(case, cases.get(case).transcript(reference_runs(case)))
    bad = transcript.mismatches(diffs)
    assert not bad, f"[{case}] transcript differs from the document:\n" + "\n".join(map(str, bad))


@pytest.mark.parametrize("case", CASES)
def test_transcript_is_exact_under_document_kernel(case, reference_runs):
    if not blas.is_document_kernel():
        pytest.skip(f"BLAS is {blas.active_kernel()}, not openblas:{blas.DOCUMENT_KERNEL}: "
                    "full-precision digits can differ in the last ulps (crosscheck.blas)")
    diffs = transcript.compare(case, cases.get(case).transcript(reference_runs(case)))
    assert not diffs, f"[{case}] not character-exact:\n" + "\n".join(map(str, diffs))


@pytest.mark.parametrize("case", CASES)
def test_transcript_data_is_verbatim(case):
    doc_path = DOCUMENTS / cases.get(case).document
    if not doc_path.exists():
        pytest.skip(f"documents not beside the checkout ({DOCUMENTS})")
    printed = transcript.printed(case)
    assert printed in doc_path.read_text(encoding="utf-8"), (
        f"[{case}] reference/printed/{case}.txt is not a verbatim block of {doc_path.name}")


@pytest.mark.parametrize("case", CASES)
def test_printed_data_covers_every_line(case):
    # One printed file per case, and it holds the document's epoch lines and final block.
    lines = transcript.printed(case).splitlines()
    assert lines[0].startswith("Epoch 0"), f"[{case}] printed block must start at Epoch 0"
    assert len(lines) >= 9, f"[{case}] printed block has only {len(lines)} lines"


def test_compare_catches_a_changed_digit():
    # The comparison itself can fail: change one printed digit of a run.
    run = cases.get("sgd_linear").run_reference()
    text = cases.get("sgd_linear").transcript(run).replace("0.2317", "0.2318")
    bad = transcript.mismatches(transcript.compare("sgd_linear", text))
    assert [d.line for d in bad] == [2]
