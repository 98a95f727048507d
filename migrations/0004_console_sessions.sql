CREATE TABLE "console_sessions" (
	"id_hash" "bytea" PRIMARY KEY NOT NULL,
	"admin_key_id" text NOT NULL,
	"csrf_secret" "bytea" NOT NULL,
	"created_at" timestamp with time zone NOT NULL,
	"last_used_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"revoked_at" timestamp with time zone,
	"source_addr" text
);
--> statement-breakpoint
ALTER TABLE "console_sessions" ADD CONSTRAINT "console_sessions_admin_key_id_admin_keys_id_fk" FOREIGN KEY ("admin_key_id") REFERENCES "public"."admin_keys"("id") ON DELETE no action ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "console_sessions_admin_key_idx" ON "console_sessions" USING btree ("admin_key_id");--> statement-breakpoint
CREATE INDEX "agents_created_idx" ON "agents" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "agents_labels_idx" ON "agents" USING gin ("labels");