-- One PostgreSQL server, three databases: Airflow metadata (created by POSTGRES_DB), the Hive
-- metastore (the engine's built-in Hive client creates its schema) and MLflow's tracking store.
CREATE DATABASE metastore OWNER offline_eval;
CREATE DATABASE mlflow OWNER offline_eval;
