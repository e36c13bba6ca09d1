"""ELECTRA: the BERT layout under ``electra.encoder.layer`` (embedding projection untouched)."""

from prunekit.models.adapter import register_adapter
from prunekit.models.bert import BertStyleAdapter

__all__ = ["ELECTRA"]

ELECTRA = register_adapter("electra")(BertStyleAdapter("electra"))
