"""Graders: one module per type (string_check, text_similarity, model_graders, python, multi),
one templating engine (template), and the registry that maps a ``type`` to its grader."""
