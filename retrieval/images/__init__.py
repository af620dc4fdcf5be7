"""Product photos: EfficientNet-Lite0 features, a category head, the catalog's photo index.

A shopper sends a photo ("shoes like these"): the bot says what it sees and shows similar
products. Loading untrusted pictures is ``shopcore.images.load_image``; the visual search
itself is ``retrieval.search.ProductSearch.search(..., photo=PhotoQuery)``, under the same
constraints and relaxation as text. The modules, in the order a photo goes through them
(callers import from them; nothing is re-exported here):

* ``preprocess``: the one framing used for training, indexing and serving (trim the
  backdrop, fit onto a square) and the foreground colour histogram.
* ``encoder``: ``ImageEncoder`` (EfficientNet-Lite0 exported once to ONNX, torch as the
  fallback) returns ``Encoded`` features, ImageNet logits and colour histograms.
* ``features``: augmented views of catalog photos, their cached features
  (``PhotoFeatures``) and the deterministic train/validation/test split.
* ``head``: the article-type and colour MLPs (``ImageHead``): training, calibration, the
  confidence cut and the metrics reported for them.
* ``classifier``: ``ImageClassifier`` gives a ``Classification`` from the head, else from
  ImageNet classes mapped onto the store's article types; ``predicted_types``.
* ``index``: the catalog photos' Chroma collection (``index_catalog_images``) and their
  vectors held in memory for the search (``catalog_photos``).

Torch, ONNX Runtime and the weights load only when a picture is first encoded.
"""
