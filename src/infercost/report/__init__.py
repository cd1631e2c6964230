"""Reports: terminal output now; markdown/HTML recommendation reports later in the pipeline."""
