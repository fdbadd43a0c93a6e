"""Translation corpora as Lightning data modules: the number corpus, plain parallel text and
fairseq `data-bin` directories, with sentencepiece vocabularies and token-bucket batching."""
