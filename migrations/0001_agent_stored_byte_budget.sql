ALTER TABLE "agents" ADD COLUMN "byte_budget_used" bigint DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE "agents" ADD COLUMN "byte_budget_used_at" timestamp with time zone;