"""Evals: the OpenAI Evals API (evals, runs, output items) and the graders they share with
``/v1/fine_tuning/alpha/graders``."""
