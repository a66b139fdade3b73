"""Protocol version 2 of the log: labels and per-label chains, stored subtree hashes,
fresh heads and witness cosignatures. Version 1 entries cannot be carried over (they
name national ids in clear and have no identity keys): the log starts again, empty, and
devices register again."""

from django.db import migrations, models
import django.db.models.deletion


def start_again(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("keylog", "LogEntry").objects.all().delete()
    apps.get_model("keylog", "SignedTreeHead").objects.all().delete()
    apps.get_model("keylog", "LogHead").objects.update(size=0, edge={"size": 0, "edge": []})
    apps.get_model("chat", "Device").objects.exclude(public_keys={}).update(public_keys={})


class Migration(migrations.Migration):

    dependencies = [
        ("keylog", "0001_initial"),
        ("chat", "0005_device_kind_and_room_archiver"),
    ]

    operations = [
        migrations.RunPython(start_again, migrations.RunPython.noop),
        migrations.DeleteModel(name="SignedTreeHead"),
        migrations.CreateModel(
            name="SignedTreeHead",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("size", models.BigIntegerField(db_index=True)),
                ("root", models.BinaryField(max_length=32)),
                ("timestamp_ms", models.BigIntegerField()),
                ("signature", models.BinaryField(max_length=64)),
            ],
        ),
        migrations.CreateModel(
            name="LogNode",
            fields=[
                ("key", models.BigIntegerField(primary_key=True, serialize=False)),
                ("hash", models.BinaryField(max_length=32)),
            ],
        ),
        migrations.CreateModel(
            name="Cosignature",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("witness", models.CharField(max_length=43)),
                ("signature", models.BinaryField(max_length=64)),
                ("received_at_ms", models.BigIntegerField()),
                ("head", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="cosignatures", to="keylog.signedtreehead")),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("head", "witness"), name="one_cosignature_per_witness")],
            },
        ),
        migrations.RemoveField(model_name="logentry", name="leaf_hash"),
        migrations.AddField(
            model_name="logentry",
            name="label",
            field=models.BinaryField(db_index=True, default=b"", max_length=32),
            preserve_default=False,
        ),
        migrations.AddField(
            model_name="logentry",
            name="prev",
            field=models.BigIntegerField(default=-1),
            preserve_default=False,
        ),
        migrations.AlterField(
            model_name="logentry",
            name="device_id",
            field=models.BigIntegerField(db_index=True, null=True),
        ),
        migrations.AlterField(
            model_name="logentry",
            name="sign_key",
            field=models.CharField(blank=True, max_length=43),
        ),
    ]
