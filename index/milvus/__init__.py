"""The Milvus backend: a collection's index kept in a Milvus server (CITEQA_BACKEND=milvus).

`client.py`: names, schemas, literal filter expressions, error mapping; `connection.py`: the calls made;
`store.py`: `MilvusStore`, the `index.backend.Store` of this backend.
"""
