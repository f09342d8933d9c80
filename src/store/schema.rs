//! The diesel schema, one for both backends (the migrations under `migrations/sqlite` and
//! `migrations/postgres` produce the same tables).

diesel::table! {
    operators (id) {
        id -> BigInt,
        email -> Text,
        name -> Text,
        password_hash -> Text,
        is_admin -> Bool,
        can_chat -> Bool,
        created_at -> BigInt,
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
    }
}

diesel::table! {
    conversations (id) {
        id -> BigInt,
        visitor_id -> BigInt,
        channel -> Text,
        status -> Text,
        last_seq -> BigInt,
        visitor_read_seq -> BigInt,
        operator_read_seq -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        closed_at -> Nullable<BigInt>,
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
    }
}

diesel::joinable!(operator_tokens -> operators (operator_id));
diesel::joinable!(conversations -> visitors (visitor_id));
diesel::joinable!(messages -> conversations (conversation_id));
diesel::allow_tables_to_appear_in_same_query!(
    operators,
    operator_tokens,
    visitors,
    conversations,
    messages
);
