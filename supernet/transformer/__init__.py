"""HAT's Transformer space for translation: the elastic SuperTransformer (`model`), its static
SubTransformer (`core`), elastic layers (`layers`), decoding (`beam`), BLEU (`evaluation`),
analytic costs (`cost`), latency workloads (`latency`), incremental decoding as two ONNX graphs
(`onnx_decoding`) and the Lightning module (`module`)."""

from supernet.transformer.core import SubTransformer, TransformerCore
from supernet.transformer.model import TransformerSupernet

__all__ = ["SubTransformer", "TransformerCore", "TransformerSupernet"]
