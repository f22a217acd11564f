from __future__ import annotations

from fastapi import APIRouter, UploadFile, status
from pydantic import BaseModel

from citeqa.errors import (
    CollectionNotFound,
    DocumentNotFound,
    IndexLocked,
    IndexModelMismatch,
    JobQueueFull,
    NotReady,
    UploadRejected,
    UploadTooLarge,
)
from index.documents import Document
from index.readers import SUPPORTED_EXTENSIONS, read_upload
from index.storage.documents import DocumentSummary
from service.deps import JobsDep, PathCollection, ReadGrant, WriteGrant
from service.jobs import Job
from service.limits import check_articles, check_file_count
from service.openapi import error_responses

# Mounted twice (service/app.py): at /v1/documents for the default collection, and under
# /v1/collections/{collection} for any.
router = APIRouter(prefix="/documents", tags=["documents"])


class DocumentList(BaseModel):
    documents: list[DocumentSummary]
    total: int


class DeletedDocument(BaseModel):
    doc_id: str
    deleted: bool = True


@router.get(
    "",
    response_model=DocumentList,
    summary="All indexed documents",
    responses=error_responses(CollectionNotFound, NotReady),
)
def list_documents(name: PathCollection, grant: ReadGrant) -> DocumentList:
    documents = grant.collection(name).store.list_documents()
    return DocumentList(documents=documents, total=len(documents))


@router.get(
    "/{doc_id}",
    response_model=Document,
    summary="One document: full text and metadata",
    responses=error_responses(DocumentNotFound, CollectionNotFound, NotReady),
)
def get_document(doc_id: str, name: PathCollection, grant: ReadGrant) -> Document:
    """The full text that citations point into, with the page map (`page_map[i]` starts at `char_start`)."""
    return grant.collection(name).store.get_document(doc_id)


@router.post(
    "",
    response_model=Job,
    status_code=status.HTTP_202_ACCEPTED,
    summary="Upload files to index, in the background",
    responses=error_responses(UploadTooLarge, UploadRejected, JobQueueFull, CollectionNotFound, NotReady),
)
def upload_documents(files: list[UploadFile], name: PathCollection, grant: WriteGrant, queue: JobsDep) -> Job:
    """Read uploaded files (`.txt`, `.md`, `.jsonl`, `.pdf`; a monthly report is detected and split into its
    articles) and queue them for indexing: the answer is the job (`GET /v1/jobs/{id}` follows it). A
    document with the same id as an indexed one replaces it; an unchanged one is skipped."""
    grant.collection(name)  # a missing collection is a 404 now, not a failed job later
    settings = grant.request.app.state.settings
    check_file_count(len(files), settings)
    documents, problems = [], []
    for upload in files:
        data = upload.file.read()  # the whole body's size is bounded as it streams in (service.limits)
        result = read_upload(upload.filename or "upload.txt", data)
        documents.extend(result.documents)
        problems.extend(result.problems)
    if not documents:
        raise UploadRejected(
            "No article could be read from the upload. Supported files: "
            f"{', '.join(sorted(SUPPORTED_EXTENSIONS))} as UTF-8 text (or PDF).",
            details=[problem.model_dump() for problem in problems],
        )
    check_articles(documents, settings)
    return queue.submit(name, [upload.filename or "upload.txt" for upload in files], documents, problems)


@router.delete(
    "/{doc_id}",
    response_model=DeletedDocument,
    summary="Remove a document and its vectors",
    responses=error_responses(
        DocumentNotFound, CollectionNotFound, IndexLocked, IndexModelMismatch, NotReady
    ),
)
def delete_document(doc_id: str, name: PathCollection, grant: WriteGrant) -> DeletedDocument:
    grant.collection(name).store.delete(doc_id)
    return DeletedDocument(doc_id=doc_id)
