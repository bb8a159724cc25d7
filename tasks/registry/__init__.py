"""Model registry (MLflow): every training run tracked, each task one registered model, versions with evaluation.

Plain Python around ``mlflow.MlflowClient``; the store is ``MLFLOW_TRACKING_URI`` when set, else a local SQLite
store under ``STATE_DIR/mlflow`` (no server needed). Only location names, run ids, pseudonymous split ids,
manifest hashes and numbers reach it: never a path.
"""
