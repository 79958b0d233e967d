DROP TABLE federation_replay;
DROP TABLE federated_subject;
DROP TABLE federation_issuer;
