"""Files: streaming upload, the JSONL structure check, and the file records."""
