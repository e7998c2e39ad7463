"""OpenAI wire types (pydantic only), one module per resource, names as in openai-python."""
