CREATE TABLE "server_key_endorsements" (
	"to_fingerprint" text PRIMARY KEY NOT NULL,
	"from_fingerprint" text NOT NULL,
	"endorsement" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
