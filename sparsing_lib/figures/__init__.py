"""One module per book chapter: the functions a chapter calls, each returning a figure, a table or numbers."""
