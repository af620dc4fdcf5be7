"""Sequential recommender: data, models, training, evaluation, serving.

- ``recsys.data``: Amazon ``user item item ...`` files and events logs (rows, SQLite, CSV) into
  user sequences; item id mapping; leave-one-out split; padded tensors.
- ``recsys.models``: one contract (``SequentialRecommender``: ``calculate_loss``,
  ``full_sort_predict``) for popularity, item-KNN co-occurrence, SASRec (optionally fused
  with item attributes / content vectors) and a SASRec + item-KNN blend.
- ``recsys.metrics`` / ``recsys.evaluate``: HR@k, NDCG@k over a full ranking of all items.
- ``recsys.trainer``: training with early stopping on validation NDCG@10 and a time budget.
- ``recsys.artifacts``: one model file (weights, config, item ids, catalog fingerprint).
- ``recsys.serving``: ``Recommender`` for the bot, with content and popularity fallbacks.
"""
