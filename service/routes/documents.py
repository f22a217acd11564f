from __future__ import annotations

from fastapi import APIRouter, UploadFile, status
from pydantic import BaseModel

from citeqa.errors import (
    DocumentNotFound,
    IndexLocked,
    IndexModelMismatch,
    NotReady,
    UploadRejected,
    UploadTooLarge,
)
from index.documents import Document
from index.ingest import IngestReport
from index.readers import SUPPORTED_EXTENSIONS, read_upload
from index.storage.documents import DocumentSummary
from service.deps import ResourcesDep
from service.openapi import error_responses

router = APIRouter(prefix="/v1/documents", tags=["documents"])


class DocumentList(BaseModel):
    documents: list[DocumentSummary]
    total: int


class DeletedDocument(BaseModel):
    doc_id: str
    deleted: bool = True


@router.get(
    "", response_model=DocumentList, summary="All indexed documents", responses=error_responses(NotReady)
)
def list_documents(resources: ResourcesDep) -> DocumentList:
    documents = resources.store.list_documents()
    return DocumentList(documents=documents, total=len(documents))


@router.get(
    "/{doc_id}",
    response_model=Document,
    summary="One document: full text and metadata",
    responses=error_responses(DocumentNotFound, NotReady),
)
def get_document(doc_id: str, resources: ResourcesDep) -> Document:
    """The full text that citations point into, with the page map (`page_map[i]` starts at `char_start`)."""
    return resources.store.get_document(doc_id)


@router.post(
    "",
    response_model=IngestReport,
    status_code=status.HTTP_201_CREATED,
    summary="Upload files to index",
    responses=error_responses(UploadTooLarge, UploadRejected, IndexLocked, IndexModelMismatch, NotReady),
)
def upload_documents(files: list[UploadFile], resources: ResourcesDep) -> IngestReport:
    """Index uploaded files (`.txt`, `.md`, `.jsonl`, `.pdf`; a monthly report is detected and split
    into its articles). A document with the same id as an indexed one replaces it."""
    limit = resources.settings.max_upload_mb * 1024 * 1024
    documents, problems = [], []
    for upload in files:
        data = upload.file.read(limit + 1)
        if len(data) > limit:
            raise UploadTooLarge(
                f"{upload.filename} is larger than {resources.settings.max_upload_mb} MB "
                "(CITEQA_MAX_UPLOAD_MB); split it or raise the limit."
            )
        result = read_upload(upload.filename or "upload.txt", data)
        documents.extend(result.documents)
        problems.extend(result.problems)
    if not documents:
        raise UploadRejected(
            "No article could be read from the upload. Supported files: "
            f"{', '.join(sorted(SUPPORTED_EXTENSIONS))} as UTF-8 text (or PDF).",
            details=[problem.model_dump() for problem in problems],
        )
    return IngestReport(documents=resources.indexer.add(documents), problems=problems)


@router.delete(
    "/{doc_id}",
    response_model=DeletedDocument,
    summary="Remove a document and its vectors",
    responses=error_responses(DocumentNotFound, IndexLocked, IndexModelMismatch, NotReady),
)
def delete_document(doc_id: str, resources: ResourcesDep) -> DeletedDocument:
    resources.store.delete(doc_id)
    return DeletedDocument(doc_id=doc_id)
