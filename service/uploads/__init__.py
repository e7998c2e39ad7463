"""OpenAI Uploads: a File built from Parts (``POST /v1/uploads``, ``/parts``, ``/complete``,
``/cancel``). ``service`` holds the records and their state, ``mime`` the MIME types each purpose
takes, ``assemble`` the one streaming pass that joins the parts into the File's blob."""
