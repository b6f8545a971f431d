-- create_run: 1 round trip(s)
INSERT INTO workflow_runs (run_id, workflow_id, workflow_version, status, input, lease_token, next_event_index, created_at, updated_at, ready_at, queue, priority, partition_key, deadline_at) VALUES (:p_run_id, :p_workflow_id, :p_workflow_version, :p_status, :p_input, :p_lease_token, :p_next_event_index, :p_created_at, :p_updated_at, :p_ready_at, :p_queue, :p_priority, :p_partition_key, :p_deadline_at);

-- create_run_claimed: 1 round trip(s)
INSERT INTO workflow_runs (run_id, workflow_id, workflow_version, status, input, lease_token, next_event_index, created_at, updated_at, ready_at, queue, priority, partition_key, deadline_at, lease_owner, lease_expires_at) SELECT :p_run_id AS anon_1, :p_workflow_id AS anon_2, :p_workflow_version AS anon_3, :p_status AS anon_4, :p_input AS anon_5, :p_lease_token AS anon_6, :p_next_event_index AS anon_7, :p_created_at AS anon_8, :p_updated_at AS anon_9, :p_ready_at AS anon_10, :p_queue AS anon_11, :p_priority AS anon_12, :p_partition_key AS anon_13, :p_deadline_at AS anon_14, :p_lease_owner AS anon_15, :p_lease_expires_at AS anon_16 
WHERE NOT (EXISTS (SELECT * 
FROM workflow_queues 
WHERE workflow_queues.name = :p_queue AND (workflow_queues.concurrency IS NOT NULL OR workflow_queues.per_key_concurrency IS NOT NULL OR workflow_queues.rate_count IS NOT NULL)));

-- claim_run: 1 round trip(s)
UPDATE workflow_runs SET updated_at=CASE WHEN (workflow_runs.status = :status_1) THEN workflow_runs.updated_at ELSE :p_now END, status=:status, lease_owner=:p_owner, lease_token=(workflow_runs.lease_token + :lease_token_1), lease_expires_at=:p_expires_at WHERE workflow_runs.run_id = :p_run_id AND (workflow_runs.status = :status_2 OR workflow_runs.status = :status_3 AND workflow_runs.lease_expires_at <= :p_now) AND NOT (EXISTS (SELECT * 
FROM workflow_queues 
WHERE workflow_queues.name = workflow_runs.queue AND (workflow_queues.concurrency IS NOT NULL OR workflow_queues.per_key_concurrency IS NOT NULL OR workflow_queues.rate_count IS NOT NULL))) RETURNING run_id, workflow_id, workflow_version, status, input, output, error, wait_kind, wait_step_id, wait_key, wait_meta, wake_at, lease_owner, lease_token, lease_expires_at, next_event_index, created_at, updated_at, ready_at, queue, priority, partition_key, deadline_at, parent_run_id, parent_policy, (SELECT json_group_array(json_array(workflow_inbox.kind, workflow_inbox."key", workflow_inbox.name, workflow_inbox.step_id, workflow_inbox.payload, workflow_inbox.meta, workflow_inbox.received_at, workflow_inbox.consumed)) AS json_group_array_1 
FROM workflow_inbox 
WHERE run_id = workflow_runs.run_id AND consumed = 0) AS inbox_json;

-- heartbeat: 1 round trip(s)
UPDATE workflow_runs SET lease_expires_at=:p_expires_at WHERE workflow_runs.run_id = :p_run_id AND workflow_runs.lease_owner = :p_owner AND workflow_runs.lease_token = :p_token AND (workflow_runs.lease_expires_at > :p_now OR NOT (EXISTS (SELECT * 
FROM workflow_queues 
WHERE workflow_queues.name = workflow_runs.queue AND (workflow_queues.concurrency IS NOT NULL OR workflow_queues.per_key_concurrency IS NOT NULL))));

-- append_events_1: 4 round trip(s)
BEGIN IMMEDIATE;
UPDATE workflow_runs SET next_event_index=:p_next WHERE workflow_runs.run_id = :p_run_id AND workflow_runs.lease_owner = :p_owner AND workflow_runs.lease_token = :p_token AND workflow_runs.next_event_index = :p_expected;
INSERT INTO workflow_events (run_id, event_index, type, step_id, data, created_at) VALUES (:p_run_id, :p_event_index, :p_type, :p_step_id, :p_data, :p_created_at);
COMMIT;

-- append_events_10: 4 round trip(s)
BEGIN IMMEDIATE;
UPDATE workflow_runs SET next_event_index=:p_next WHERE workflow_runs.run_id = :p_run_id AND workflow_runs.lease_owner = :p_owner AND workflow_runs.lease_token = :p_token AND workflow_runs.next_event_index = :p_expected;
INSERT INTO workflow_events (run_id, event_index, type, step_id, data, created_at) VALUES (:p_run_id, :p_event_index, :p_type, :p_step_id, :p_data, :p_created_at);
COMMIT;

-- settle_run: 4 round trip(s)
BEGIN IMMEDIATE;
UPDATE workflow_runs SET status=:p_v_status, wait_kind=:p_v_wait_kind, wait_step_id=:p_v_wait_step_id, wait_key=:p_v_wait_key, wait_meta=:p_v_wait_meta, wake_at=:p_v_wake_at, lease_owner=:p_v_lease_owner, lease_expires_at=:p_v_lease_expires_at, next_event_index=:p_v_next_event_index, updated_at=:p_v_updated_at, ready_at=:p_v_ready_at WHERE workflow_runs.run_id = :p_run_id AND workflow_runs.lease_owner = :p_owner AND workflow_runs.lease_token = :p_token AND workflow_runs.next_event_index = :p_expected RETURNING run_id, workflow_id, workflow_version, status, input, output, error, wait_kind, wait_step_id, wait_key, wait_meta, wake_at, lease_owner, lease_token, lease_expires_at, next_event_index, created_at, updated_at, ready_at, queue, priority, partition_key, deadline_at, parent_run_id, parent_policy;
UPDATE workflow_runs SET status=:p_q_status, wait_kind=:p_q_wait_kind, wait_step_id=:p_q_wait_step_id, wait_key=:p_q_wait_key, wait_meta=:p_q_wait_meta, wake_at=:p_q_wake_at, updated_at=:p_q_updated_at, ready_at=:p_q_ready_at WHERE workflow_runs.run_id = :p_run_id AND (EXISTS (SELECT * 
FROM workflow_inbox 
WHERE workflow_inbox.run_id = :p_run_id AND workflow_inbox.consumed = 0 AND (workflow_inbox.kind = :kind_1 AND workflow_inbox."key" = :p_wait_step_id OR workflow_inbox.kind = :kind_2 AND workflow_inbox.name = :p_wait_key AND (workflow_inbox.step_id IS NULL OR workflow_inbox.step_id = :p_wait_step_id))));
COMMIT;

-- fire_due_timers: 6 round trip(s)
BEGIN IMMEDIATE;
SELECT workflow_runs.run_id, workflow_runs.deadline_at, workflow_runs.parent_run_id 
FROM workflow_runs 
WHERE workflow_runs.finished_at IS NULL AND workflow_runs.deadline_at <= :p_now ORDER BY workflow_runs.deadline_at, workflow_runs.run_id
 LIMIT :p_limit OFFSET :param_1;
SELECT workflow_runs.run_id, workflow_runs.wait_kind, workflow_runs.wait_step_id, workflow_runs.wait_key, workflow_runs.wake_at 
FROM workflow_runs 
WHERE workflow_runs.wake_at IS NOT NULL AND workflow_runs.wake_at <= :p_now ORDER BY workflow_runs.wake_at, workflow_runs.run_id
 LIMIT :p_limit OFFSET :param_1;
INSERT INTO workflow_inbox (run_id, kind, "key", name, step_id, payload, meta, received_at, consumed) VALUES (:p_run_id, :p_kind, :p_key, :p_name, :p_step_id, :p_payload, :p_meta, :p_received_at, :p_consumed) ON CONFLICT (run_id, kind, "key") DO UPDATE SET name = excluded.name, payload = excluded.payload, meta = excluded.meta, received_at = excluded.received_at, consumed = excluded.consumed;
UPDATE workflow_runs SET status=:p_q_status, wait_kind=:p_q_wait_kind, wait_step_id=:p_q_wait_step_id, wait_key=:p_q_wait_key, wait_meta=:p_q_wait_meta, wake_at=:p_q_wake_at, updated_at=:p_q_updated_at, ready_at=:p_q_ready_at WHERE workflow_runs.run_id IN (:p_id0);
COMMIT;

-- deliver_signal: 5 round trip(s)
BEGIN IMMEDIATE;
SELECT workflow_runs.run_id, workflow_runs.workflow_id, workflow_runs.workflow_version, workflow_runs.status, workflow_runs.input, workflow_runs.output, workflow_runs.error, workflow_runs.wait_kind, workflow_runs.wait_step_id, workflow_runs.wait_key, workflow_runs.wait_meta, workflow_runs.wake_at, workflow_runs.lease_owner, workflow_runs.lease_token, workflow_runs.lease_expires_at, workflow_runs.next_event_index, workflow_runs.created_at, workflow_runs.updated_at, workflow_runs.ready_at, workflow_runs.queue, workflow_runs.priority, workflow_runs.partition_key, workflow_runs.deadline_at, workflow_runs.parent_run_id, workflow_runs.parent_policy, seen.kind AS seen_kind, seen."key" AS seen_key, seen.name AS seen_name, seen.step_id AS seen_step_id, seen.payload AS seen_payload, seen.meta AS seen_meta, seen.received_at AS seen_received_at, seen.consumed AS seen_consumed 
FROM workflow_runs LEFT OUTER JOIN workflow_inbox AS seen ON seen.run_id = workflow_runs.run_id AND seen.kind = :p_kind AND seen."key" = :p_key 
WHERE workflow_runs.run_id = :p_run_id;
INSERT INTO workflow_inbox (run_id, kind, "key", name, step_id, payload, meta, received_at, consumed) VALUES (:p_run_id, :p_kind, :p_key, :p_name, :p_step_id, :p_payload, :p_meta, :p_received_at, :p_consumed);
UPDATE workflow_runs SET status=:p_q_status, wait_kind=:p_q_wait_kind, wait_step_id=:p_q_wait_step_id, wait_key=:p_q_wait_key, wait_meta=:p_q_wait_meta, wake_at=:p_q_wake_at, updated_at=:p_q_updated_at, ready_at=:p_q_ready_at WHERE workflow_runs.run_id = :p_run_id;
COMMIT;

-- claim_runnable: 1 round trip(s)
WITH picked AS MATERIALIZED 
(SELECT claimable.run_id AS run_id, claimable.priority AS priority, claimable.ready_at AS ready_at 
FROM (SELECT queued.run_id AS run_id, queued.priority AS priority, queued.ready_at AS ready_at 
FROM (SELECT workflow_runs.run_id AS run_id, workflow_runs.priority AS priority, workflow_runs.ready_at AS ready_at 
FROM workflow_runs 
WHERE workflow_runs.status = :status_2 AND workflow_runs.ready_at IS NOT NULL AND NOT (EXISTS (SELECT * 
FROM workflow_queues 
WHERE workflow_queues.concurrency IS NOT NULL OR workflow_queues.per_key_concurrency IS NOT NULL OR workflow_queues.rate_count IS NOT NULL)) ORDER BY workflow_runs.priority DESC, workflow_runs.ready_at, workflow_runs.run_id
 LIMIT :p_limit OFFSET :param_1) AS queued UNION ALL SELECT expired.run_id AS run_id, expired.priority AS priority, expired.ready_at AS ready_at 
FROM (SELECT workflow_runs.run_id AS run_id, workflow_runs.priority AS priority, workflow_runs.ready_at AS ready_at 
FROM workflow_runs 
WHERE workflow_runs.status = :status_3 AND workflow_runs.lease_expires_at <= :p_now AND workflow_runs.ready_at IS NOT NULL AND NOT (EXISTS (SELECT * 
FROM workflow_queues 
WHERE workflow_queues.concurrency IS NOT NULL OR workflow_queues.per_key_concurrency IS NOT NULL OR workflow_queues.rate_count IS NOT NULL)) ORDER BY workflow_runs.priority DESC, workflow_runs.ready_at, workflow_runs.run_id
 LIMIT :p_limit OFFSET :param_2) AS expired) AS claimable ORDER BY claimable.priority DESC, claimable.ready_at, claimable.run_id
 LIMIT :p_limit OFFSET :param_3)
 UPDATE workflow_runs SET updated_at=CASE WHEN (workflow_runs.status = :status_1) THEN workflow_runs.updated_at ELSE :p_now END, status=:status, lease_owner=:p_owner, lease_token=(workflow_runs.lease_token + :lease_token_1), lease_expires_at=:p_expires_at FROM picked WHERE workflow_runs.run_id = picked.run_id AND (workflow_runs.status = :status_4 OR workflow_runs.status = :status_5 AND workflow_runs.lease_expires_at <= :p_now) AND NOT (EXISTS (SELECT * 
FROM workflow_queues 
WHERE workflow_queues.name = workflow_runs.queue AND (workflow_queues.concurrency IS NOT NULL OR workflow_queues.per_key_concurrency IS NOT NULL OR workflow_queues.rate_count IS NOT NULL))) RETURNING run_id, workflow_id, workflow_version, status, input, output, error, wait_kind, wait_step_id, wait_key, wait_meta, wake_at, lease_owner, lease_token, lease_expires_at, next_event_index, created_at, updated_at, ready_at, queue, priority, partition_key, deadline_at, parent_run_id, parent_policy, (SELECT json_group_array(json_array(workflow_inbox.kind, workflow_inbox."key", workflow_inbox.name, workflow_inbox.step_id, workflow_inbox.payload, workflow_inbox.meta, workflow_inbox.received_at, workflow_inbox.consumed)) AS json_group_array_1 
FROM workflow_inbox 
WHERE run_id = workflow_runs.run_id AND consumed = 0) AS inbox_json;

-- fire_due_schedules: 5 round trip(s)
BEGIN IMMEDIATE;
SELECT workflow_schedules.schedule_id, workflow_schedules.workflow_id, workflow_schedules.workflow_version, workflow_schedules.spec, workflow_schedules.overlap, workflow_schedules.input, workflow_schedules.enabled, workflow_schedules.next_fire_at, workflow_schedules.last_fired_at, workflow_schedules.last_run_id, workflow_schedules.updated_at, (SELECT workflow_runs.status 
FROM workflow_runs 
WHERE workflow_runs.run_id = workflow_schedules.last_run_id) IS NOT NULL AND (SELECT workflow_runs.status 
FROM workflow_runs 
WHERE workflow_runs.run_id = workflow_schedules.last_run_id) IN (:param_1, :param_2, :param_3) AS busy 
FROM workflow_schedules 
WHERE workflow_schedules.enabled = 1 AND workflow_schedules.next_fire_at <= :p_now AND NOT (workflow_schedules.overlap = :overlap_1 AND (SELECT workflow_runs.status 
FROM workflow_runs 
WHERE workflow_runs.run_id = workflow_schedules.last_run_id) IS NOT NULL AND (SELECT workflow_runs.status 
FROM workflow_runs 
WHERE workflow_runs.run_id = workflow_schedules.last_run_id) IN (:param_1, :param_2, :param_3)) ORDER BY workflow_schedules.next_fire_at, workflow_schedules.schedule_id
 LIMIT :p_limit OFFSET :param_4;
INSERT INTO workflow_runs (run_id, workflow_id, workflow_version, status, input, lease_token, next_event_index, created_at, updated_at, ready_at) VALUES (:p_run_id, :p_workflow_id, :p_workflow_version, :p_status, :p_input, :p_lease_token, :p_next_event_index, :p_created_at, :p_updated_at, :p_ready_at) ON CONFLICT DO NOTHING;
UPDATE workflow_schedules SET next_fire_at=CASE WHEN (workflow_schedules.schedule_id = :p_sid0) THEN :p_nfa0 WHEN (workflow_schedules.schedule_id = :p_sid1) THEN :p_nfa1 ELSE workflow_schedules.next_fire_at END, last_fired_at=CASE WHEN (workflow_schedules.schedule_id = :p_sid0) THEN :p_lfa0 WHEN (workflow_schedules.schedule_id = :p_sid1) THEN :p_lfa1 ELSE workflow_schedules.last_fired_at END, last_run_id=CASE WHEN (workflow_schedules.schedule_id = :p_sid0) THEN :p_lri0 WHEN (workflow_schedules.schedule_id = :p_sid1) THEN :p_lri1 ELSE workflow_schedules.last_run_id END WHERE workflow_schedules.schedule_id IN (:p_sid0, :p_sid1);
COMMIT;

-- list_runs: 1 round trip(s)
SELECT workflow_runs.run_id, workflow_runs.workflow_id, workflow_runs.workflow_version, workflow_runs.status, workflow_runs.input, workflow_runs.output, workflow_runs.error, workflow_runs.wait_kind, workflow_runs.wait_step_id, workflow_runs.wait_key, workflow_runs.wait_meta, workflow_runs.wake_at, workflow_runs.lease_owner, workflow_runs.lease_token, workflow_runs.lease_expires_at, workflow_runs.next_event_index, workflow_runs.created_at, workflow_runs.updated_at, workflow_runs.ready_at, workflow_runs.queue, workflow_runs.priority, workflow_runs.partition_key, workflow_runs.deadline_at, workflow_runs.parent_run_id, workflow_runs.parent_policy 
FROM workflow_runs ORDER BY workflow_runs.created_at DESC, workflow_runs.run_id DESC
 LIMIT :p_limit OFFSET :param_1;

-- load_run: 1 round trip(s)
SELECT workflow_runs.run_id, workflow_runs.workflow_id, workflow_runs.workflow_version, workflow_runs.status, workflow_runs.input, workflow_runs.output, workflow_runs.error, workflow_runs.wait_kind, workflow_runs.wait_step_id, workflow_runs.wait_key, workflow_runs.wait_meta, workflow_runs.wake_at, workflow_runs.lease_owner, workflow_runs.lease_token, workflow_runs.lease_expires_at, workflow_runs.next_event_index, workflow_runs.created_at, workflow_runs.updated_at, workflow_runs.ready_at, workflow_runs.queue, workflow_runs.priority, workflow_runs.partition_key, workflow_runs.deadline_at, workflow_runs.parent_run_id, workflow_runs.parent_policy 
FROM workflow_runs 
WHERE workflow_runs.run_id = :p_run_id;
