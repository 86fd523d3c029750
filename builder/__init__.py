"""wharfie's builder: Dockerfile parsing and planning, and the steps that execute a build."""
