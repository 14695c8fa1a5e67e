"""Human-facing renderings (HTML, Markdown, text) of results computed elsewhere. No IO."""
