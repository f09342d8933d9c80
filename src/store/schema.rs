//! The diesel schema, one for both backends (the migrations under `migrations/sqlite` and
//! `migrations/postgres` produce the same tables).

diesel::table! {
    operators (id) {
        id -> BigInt,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        is_admin -> Bool,
        created_at -> BigInt,
        capacity -> BigInt,
        available -> Bool,
        display_mode -> Text,
    }
}

diesel::table! {
    operator_tokens (token_hash) {
        token_hash -> Text,
        operator_id -> BigInt,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    visitors (id) {
        id -> BigInt,
        token_hash -> Text,
        created_at -> BigInt,
        contact_id -> Nullable<BigInt>,
    }
}

diesel::table! {
    conversations (id) {
        id -> BigInt,
        visitor_id -> Nullable<BigInt>,
        channel -> Text,
        status -> Text,
        last_seq -> BigInt,
        visitor_read_seq -> BigInt,
        operator_read_seq -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        closed_at -> Nullable<BigInt>,
        kind -> Text,
        assignee_id -> Nullable<BigInt>,
        team_id -> Nullable<BigInt>,
        queued_at -> Nullable<BigInt>,
        contact_id -> Nullable<BigInt>,
        visitor_delivered_seq -> BigInt,
    }
}

diesel::table! {
    messages (conversation_id, seq) {
        conversation_id -> BigInt,
        seq -> BigInt,
        kind -> Text,
        author_kind -> Text,
        author_id -> BigInt,
        client_id -> Nullable<Text>,
        body -> Text,
        created_at -> BigInt,
        meta -> Nullable<Text>,
    }
}

diesel::table! {
    user_groups (id) {
        id -> BigInt,
        name -> Text,
        can_chat -> Bool,
        created_at -> BigInt,
    }
}

diesel::table! {
    operator_groups (operator_id, group_id) {
        operator_id -> BigInt,
        group_id -> BigInt,
    }
}

diesel::table! {
    teams (id) {
        id -> BigInt,
        name -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    team_members (team_id, operator_id) {
        team_id -> BigInt,
        operator_id -> BigInt,
    }
}

diesel::table! {
    channels (id) {
        id -> BigInt,
        name -> Text,
        title -> Text,
        kind -> Text,
        team_id -> Nullable<BigInt>,
        created_at -> BigInt,
        settings -> Text,
        identity_secret -> Text,
    }
}

diesel::table! {
    contacts (id) {
        id -> BigInt,
        name -> Text,
        owner_id -> Nullable<BigInt>,
        created_at -> BigInt,
        updated_at -> BigInt,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        address -> Nullable<Text>,
        vip -> Bool,
        bad -> Bool,
        merged_into -> Nullable<BigInt>,
        erased_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    contact_identifiers (id) {
        id -> BigInt,
        contact_id -> BigInt,
        kind -> Text,
        value -> Text,
        verified -> Bool,
        source -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    merge_suggestions (id) {
        id -> BigInt,
        contact_id -> BigInt,
        candidate_id -> BigInt,
        kind -> Text,
        value -> Text,
        status -> Text,
        created_at -> BigInt,
        decided_by -> Nullable<BigInt>,
        decided_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    contact_merges (id) {
        id -> BigInt,
        from_contact_id -> BigInt,
        into_contact_id -> BigInt,
        by_operator_id -> Nullable<BigInt>,
        reason -> Text,
        conversations_moved -> BigInt,
        at -> BigInt,
    }
}

diesel::table! {
    attachments (id) {
        id -> Text,
        conversation_id -> Nullable<BigInt>,
        uploader_kind -> Text,
        uploader_id -> BigInt,
        filename -> Text,
        content_type -> Text,
        size -> BigInt,
        data -> Binary,
        created_at -> BigInt,
    }
}

diesel::table! {
    erasures (id) {
        id -> BigInt,
        contact_id -> BigInt,
        by_operator_id -> Nullable<BigInt>,
        at -> BigInt,
    }
}

diesel::table! {
    conversation_members (conversation_id, operator_id) {
        conversation_id -> BigInt,
        operator_id -> BigInt,
        read_seq -> BigInt,
    }
}

diesel::table! {
    assignments (id) {
        id -> BigInt,
        conversation_id -> BigInt,
        from_operator_id -> Nullable<BigInt>,
        to_operator_id -> Nullable<BigInt>,
        by_operator_id -> Nullable<BigInt>,
        reason -> Text,
        at -> BigInt,
    }
}

diesel::table! {
    drafts (operator_id, conversation_id) {
        operator_id -> BigInt,
        conversation_id -> BigInt,
        body -> Text,
        reply_to -> Nullable<BigInt>,
        updated_at -> BigInt,
    }
}

diesel::table! {
    settings (key) {
        key -> Text,
        value -> Text,
    }
}

diesel::table! {
    outbox (id) {
        id -> BigInt,
        kind -> Text,
        conversation_id -> BigInt,
        to_address -> Text,
        subject -> Text,
        text_body -> Text,
        html_body -> Text,
        message_id -> Text,
        reply_to -> Text,
        status -> Text,
        attempts -> BigInt,
        next_attempt_at -> BigInt,
        last_error -> Nullable<Text>,
        created_at -> BigInt,
        sent_at -> Nullable<BigInt>,
        covers_seq -> Nullable<BigInt>,
    }
}

diesel::table! {
    timers (id) {
        id -> BigInt,
        kind -> Text,
        conversation_id -> BigInt,
        due_at -> BigInt,
        created_at -> BigInt,
        fired_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    visitor_tokens (token_hash) {
        token_hash -> Text,
        visitor_id -> BigInt,
        created_at -> BigInt,
    }
}

diesel::joinable!(operator_tokens -> operators (operator_id));
diesel::joinable!(conversations -> visitors (visitor_id));
diesel::joinable!(conversations -> contacts (contact_id));
diesel::joinable!(messages -> conversations (conversation_id));
diesel::joinable!(operator_groups -> user_groups (group_id));
diesel::joinable!(operator_groups -> operators (operator_id));
diesel::joinable!(team_members -> teams (team_id));
diesel::joinable!(team_members -> operators (operator_id));
diesel::joinable!(channels -> teams (team_id));
diesel::joinable!(conversation_members -> conversations (conversation_id));
diesel::joinable!(conversation_members -> operators (operator_id));
diesel::joinable!(drafts -> conversations (conversation_id));
diesel::joinable!(contact_identifiers -> contacts (contact_id));
diesel::joinable!(attachments -> conversations (conversation_id));
diesel::allow_tables_to_appear_in_same_query!(
    operators,
    operator_tokens,
    visitors,
    conversations,
    messages,
    user_groups,
    operator_groups,
    teams,
    team_members,
    channels,
    contacts,
    conversation_members,
    assignments,
    drafts,
    settings,
    contact_identifiers,
    merge_suggestions,
    contact_merges,
    attachments,
    erasures,
    outbox,
    timers,
    visitor_tokens
);
