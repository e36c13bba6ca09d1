"""RoBERTa (and XLM-R): the BERT layout under ``roberta.encoder.layer``."""

from prunekit.models.adapter import register_adapter
from prunekit.models.bert import BertStyleAdapter

__all__ = ["ROBERTA"]

ROBERTA = register_adapter("roberta", "xlm-roberta")(BertStyleAdapter("roberta"))
