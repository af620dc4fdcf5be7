"""Recommender: data, models, training, evaluation, serving (see the recommender issue)."""
