"""Analysis of rows: stats (CIs, paired differences), report (summary tables and plots),
figures (shared drawings), bleu, events (TensorBoard). Imports nothing of the engine but its
leaf module `engine.files` (atomic writes).
"""
