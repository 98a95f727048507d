ALTER TABLE "agent_keys" ADD COLUMN "replaced_by" text;--> statement-breakpoint
ALTER TABLE "agent_keys" ADD COLUMN "superseded_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "agent_keys" ADD COLUMN "superseded_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "agent_keys" ADD COLUMN "credential" text;--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "credential_ttl_seconds" integer;--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "renew_requested_at" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "enrollment_tokens" ADD COLUMN "credential_ttl_seconds" integer;