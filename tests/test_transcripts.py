"""The reference reproduces every line the documents printed, and the printed data is
verbatim: ``reference/printed/documents.sha256`` records each document's sha256 and where
each block lies in it, so a clean clone checks the blocks without the documents."""

import os
from pathlib import Path

import pytest
from helpers import block_problems, read_provenance, sha256

from crosscheck.declaring import cases
from crosscheck.judging import transcript
from crosscheck.running import blas

CASES = list(cases.CASES)
PROVENANCE = transcript.PRINTED / "documents.sha256"
# The source documents live outside the repository, so the suite reads nothing of theirs
# unless asked: CROSSCHECK_DOCUMENTS=<folder> also checks the provenance against them.
DOCUMENTS = os.environ.get("CROSSCHECK_DOCUMENTS")


@pytest.mark.parametrize("case", CASES)
def test_transcript_matches_document(case, reference_runs):
    diffs = transcript.compare(case, cases.get(case).transcript(reference_runs(case)))
    bad = transcript.mismatches(diffs)
    assert not bad, f"[{case}] transcript differs from the document:\n" + "\n".join(map(str, bad))


@pytest.mark.parametrize("case", CASES)
def test_transcript_is_exact_under_document_kernel(case, reference_runs):
    if not blas.is_document_kernel():
        pytest.skip(f"BLAS is {blas.active_kernel()}, not openblas:{blas.DOCUMENT_KERNEL}: "
                    "full-precision digits can differ in the last ulps (crosscheck.running.blas)")
    diffs = transcript.compare(case, cases.get(case).transcript(reference_runs(case)))
    assert not diffs, f"[{case}] not character-exact:\n" + "\n".join(map(str, diffs))


def test_every_printed_block_has_a_recorded_provenance():
    documents, blocks = read_provenance(PROVENANCE)
    assert set(blocks) == {f"{c}.txt" for c in CASES}, (
        f"{PROVENANCE.name} records {sorted(blocks)}, cases {sorted(CASES)}")
    for case in CASES:
        block, document = blocks[f"{case}.txt"], cases.get(case).document
        assert block.document == document, f"[{case}] recorded from {block.document}, case says {document}"
        assert document in documents, f"[{case}] no sha256 recorded for {document}"


@pytest.mark.parametrize("case", CASES)
def test_transcript_data_is_verbatim(case, record_property):
    # In the repository alone: the printed block is the bytes recorded from the document
    # (length and sha256). With CROSSCHECK_DOCUMENTS, also: the document is the one
    # recorded, and the block is its bytes [offset, offset + length).
    documents, blocks = read_provenance(PROVENANCE)
    block, data = blocks[f"{case}.txt"], (transcript.PRINTED / f"{case}.txt").read_bytes()
    problems = block_problems(f"reference/printed/{case}.txt", data, block)
    assert not problems, f"[{case}] printed block differs from what was recorded: {problems}"
    record_property("document_checked", bool(DOCUMENTS))
    if DOCUMENTS:
        doc_path = Path(DOCUMENTS) / block.document
        assert doc_path.is_file(), f"[{case}] CROSSCHECK_DOCUMENTS={DOCUMENTS} has no {block.document}"
        doc = doc_path.read_bytes()
        assert sha256(doc) == documents[block.document], (
            f"[{case}] {doc_path} has sha256 {sha256(doc)}, recorded {documents[block.document]}")
        cut = doc[block.offset:block.offset + block.length]
        assert cut == data, (f"[{case}] {doc_path.name}[{block.offset}:{block.offset + block.length}] "
                             f"is {cut[:60]!r}..., reference/printed/{case}.txt is {data[:60]!r}...")


def test_provenance_check_catches_a_changed_digit():
    # The in-repository check can fail: one changed digit of a printed block.
    _, blocks = read_provenance(PROVENANCE)
    data = (transcript.PRINTED / "sgd_linear.txt").read_bytes()
    assert b"0.2317" in data
    changed = data.replace(b"0.2317", b"0.2318", 1)
    problems = block_problems("sgd_linear.txt", changed, blocks["sgd_linear.txt"])
    assert len(problems) == 1 and "sha256" in problems[0], problems


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
